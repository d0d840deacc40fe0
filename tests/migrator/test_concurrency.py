"""Writers at the same time: ``select_for_update()`` syncs, locks the local rows, and the save
that follows carries the ETag; ``get_or_create()``/``update_or_create()`` from two processes
(threads with database connections of their own here) make one record, the second getting
the first's row."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

import migrator
from cdms_api.errors import PreconditionFailed
from core.models import Organisation
from migrator import loader
from migrator.inbound import write_page
from migrator.loader import Stored, load
from migrator.testing import assertNumRemoteCalls
from tests.seeded import NORTHWIND


def test_select_for_update_syncs_and_the_save_carries_the_etag(crm, synced):
    crm.change(NORTHWIND, numberofemployees=11)
    with transaction.atomic():
        with assertNumRemoteCalls(1):
            org = Organisation.objects.select_for_update().get(name=NORTHWIND)
        assert org.employees == 11  # synced before the rows were locked
        crm.change(NORTHWIND, telephone1="+1 in between")
        org.employees = 12
        with assertNumRemoteCalls(2), pytest.raises(PreconditionFailed):
            org.save()  # a conflict, not a lost update
    record = crm.record(Organisation, crm.key(NORTHWIND))
    assert (record["numberofemployees"], record["telephone1"]) == (11, "+1 in between")


def in_threads(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call in a thread of its own (its own database connection), started together;
    their results, or the exceptions they raised."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            start.wait()
            results[index] = call()
        except Exception as error:  # reported to the test
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.fixture
def slow_creates(cdms_simulator):
    """Creates take a while: without a lock, both processes would read, find nothing, and
    create."""
    cdms_simulator.add_faults(
        {"method": "POST", "path": "/accounts$", "times": None, "action": "pass", "delay_ms": 400}
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("method", ["get_or_create", "update_or_create"])
def test_two_processes_asking_for_one_lookup_make_one_record(crm, slow_creates, method):
    """The second process waits for the first's lock, then finds its record: ``get_or_create``
    returns it as it is, ``update_or_create`` writes its own defaults over it."""
    call = getattr(Organisation.objects, method)
    results = in_threads(
        *(lambda n=n: call(name="Raced Ltd", defaults={"employees": n}) for n in (1, 2))
    )
    assert not any(isinstance(r, Exception) for r in results), results
    (first, created), (second, _) = sorted(results, key=lambda r: r[1], reverse=True)
    assert created and first.pk == second.pk and first.cdms_pk == second.cdms_pk
    [record] = crm.find("accounts", "name", "Raced Ltd")
    winner = second if method == "update_or_create" else first  # who wrote last
    assert record["numberofemployees"] == winner.employees
    assert Organisation.objects.skip_cdms().filter(name="Raced Ltd").count() == 1
    crm.assert_in_sync(Organisation, record["accountid"])


def lock_northwind_at_once() -> list[Organisation]:
    with transaction.atomic():
        rows = Organisation.objects.skip_cdms().select_for_update(nowait=True)
        return list(rows.filter(name=NORTHWIND))


@pytest.mark.django_db(transaction=True)
def test_select_for_update_locks_the_local_rows(crm, synced):
    """On PostgreSQL the rows are locked: another process cannot lock them meanwhile. SQLite
    has no row locks (Django leaves FOR UPDATE out): its transactions take the whole
    database's write lock when they begin (``transaction_mode`` IMMEDIATE)."""
    with transaction.atomic():
        Organisation.objects.select_for_update().get(name=NORTHWIND)
        if not connection.features.has_select_for_update:
            assert connection.vendor == "sqlite"
            return
        [outcome] = in_threads(lock_northwind_at_once)
    assert isinstance(outcome, DatabaseError)
    assert len(in_threads(lock_northwind_at_once)[0]) == 1  # free once the first committed


@pytest.mark.django_db(transaction=True)
def test_two_processes_saving_one_loaded_record_one_wins_the_other_gets_both_versions(crm, synced):
    """No lost update: the second save is refused (412) with what it sent and what the
    remote holds, whichever of the two got there first."""
    first = Organisation.objects.get(name=NORTHWIND)
    second = Organisation.objects.get(name=NORTHWIND)
    first.employees, second.employees = 1001, 2002

    results = in_threads(first.save, second.save)

    [conflict] = [r for r in results if isinstance(r, PreconditionFailed)]
    assert results.count(None) == 1
    winner, loser = (first, second) if results[0] is None else (second, first)
    assert conflict.sent == {"numberofemployees": loser.employees}
    assert conflict.current["numberofemployees"] == winner.employees
    assert conflict.current["@odata.etag"] == winner.cdms_etag
    crm.assert_in_sync(Organisation, crm.key(NORTHWIND))
    record = crm.record(Organisation, crm.key(NORTHWIND))
    assert record["numberofemployees"] == winner.employees


def test_a_conflict_in_an_atomic_block_has_both_versions_too(crm, synced):
    org = Organisation.objects.get(name=NORTHWIND)
    crm.change(NORTHWIND, numberofemployees=7)
    org.employees = 8
    with pytest.raises(PreconditionFailed) as caught, migrator.atomic():
        org.save()
    assert caught.value.sent == {"numberofemployees": 8}
    assert caught.value.current["numberofemployees"] == 7


def test_page_writers_lock_rows_in_one_order(remote_client, synced):
    """Found by the fault soak on PostgreSQL: a resync's page and a read's page writing
    overlapping rows locked them in different orders, and deadlocked (an untyped
    ``OperationalError``). Both now lock the rows first, by primary key, before writing them
    (SQLite has no row locks: one writer at a time holds the database's)."""
    records = list(remote_client.iter("accounts", select=Organisation.cdms.select))
    with CaptureQueriesContext(connection) as queries:
        write_page(Organisation, records)
        load(Organisation, [{**r, "@odata.etag": NEWER} for r in reversed(records)])
    statements = [q["sql"] for q in queries.captured_queries if '"core_organisation"' in q["sql"]]
    writes = [i for i, sql in enumerate(statements) if sql.startswith("INSERT")]
    locks = [i for i, sql in enumerate(statements) if "FOR UPDATE" in sql]
    assert len(writes) == 2  # the resync's page, the read's page
    if connection.vendor == "postgresql":
        assert all(LOCKED.search(statements[i]) for i in locks), statements
        assert all(any(lock < write for lock in locks) for write in writes)
        assert len(locks) >= len(writes)
    else:
        assert locks == []


NEWER = 'W/"999999999"'  # a version the remote has not reached: a record to write
LOCKED = re.compile(r'ORDER BY ("core_organisation"\."id"|1) ASC FOR UPDATE\s*$')


def update_by_name(names: list[str]) -> None:
    Organisation.objects.filter(name__in=names).update(employees=5)


def bulk_update_by_name(names: list[str]) -> None:
    objs = list(Organisation.objects.skip_cdms().filter(name__in=names))
    for obj in objs:
        obj.employees = 5
    Organisation.objects.bulk_update(objs, ["employees"])


@pytest.mark.parametrize("write", [update_by_name, bulk_update_by_name], ids=["update", "bulk"])
def test_bulk_updates_lock_their_rows_in_the_page_writers_order(remote_client, synced, write):
    """Found by the fault soak on PostgreSQL: ``qs.update()`` locked its rows in the order its
    ``UPDATE`` found them while a resync's page, holding some of them, waited for the others:
    a deadlock (an untyped ``OperationalError``). The rows are now locked first, by primary
    key, as the page writers lock them (SQLite has no row locks)."""
    names = sorted(Organisation.objects.skip_cdms().values_list("name", flat=True))[:3]
    with CaptureQueriesContext(connection) as queries:
        write(names)
    statements = [q["sql"] for q in queries.captured_queries if '"core_organisation"' in q["sql"]]
    first_update = next(i for i, sql in enumerate(statements) if sql.startswith("UPDATE"))
    locked = LOCKED.search(statements[first_update - 1])
    assert bool(locked) == connection.features.has_select_for_update, statements


def test_the_statement_that_locks_a_pages_rows_reads_their_etags(remote_client, synced):
    """Rows stored already, whose ETags the read knows: one statement reads their ETags again
    and locks them (PostgreSQL; SQLite has no row locks: it reads them again under the
    database's lock); new rows have nothing to lock or read again: they are inserted unless
    they appeared meanwhile (the insert says which it inserted)."""
    records = list(remote_client.iter("accounts", select=Organisation.cdms.select))
    etags = dict(Organisation.objects.skip_cdms().values_list("cdms_pk", "cdms_etag"))
    stored = Stored({str(key): etag for key, etag in etags.items()})
    with CaptureQueriesContext(connection) as changed:
        load(Organisation, [{**r, "@odata.etag": NEWER} for r in records], stored=stored)
    Organisation.objects.skip_cdms().all().delete()
    with CaptureQueriesContext(connection) as new:
        load(Organisation, records)
    locking = [sql for sql in etag_reads(changed) if LOCKED.search(sql)]
    locks = connection.features.has_select_for_update
    assert (len(locking), len(etag_reads(changed))) == (int(locks), 1)
    assert [LOCKED.search(sql) for sql in etag_reads(new)] == [None]


def etag_reads(captured: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT") and '"cdms_etag"' in q["sql"].split(" FROM ")[0]
    ]


@pytest.mark.django_db(transaction=True)
def test_a_page_never_overwrites_a_row_stored_while_it_waited(remote_client):
    """Found by the fault soak on PostgreSQL: a page compared its records with the rows it
    locked, but a row inserted by a transaction not yet committed was not there to lock. The
    page, waiting for that transaction at an earlier row, then found a later row stored
    meanwhile by a save (a newer version) and wrote its older record over it: reads answered
    a value the remote no longer held."""
    if not connection.features.has_select_for_update:
        pytest.skip("SQLite has no row locks: one writer at a time holds the database's")
    first, later = uuid.UUID(int=1), uuid.UUID(int=2)  # the page writes them in this order
    for key in (first, later):
        remote_client.create("accounts", {"name": f"Paged {key.int}"}, key=key)
    page = list(remote_client.records("accounts", [first, later], Organisation.cdms.select))
    newer = remote_client.update("accounts", later, {"numberofemployees": 2})
    inserted, commit = threading.Event(), threading.Event()

    def create_uncommitted() -> None:  # a create whose save has not committed yet
        with transaction.atomic():
            Organisation.objects.skip_cdms().create(name="Paged 1", cdms_pk=first)
            inserted.set()
            commit.wait(10)

    def write_the_page() -> None:
        inserted.wait(10)
        write_page(Organisation, page)

    threads = [in_thread(create_uncommitted), in_thread(write_the_page)]
    until(waiting_for_a_lock)  # the page waits for the first row
    load(Organisation, [newer])  # the later row stored as a save stores it: the newer version
    commit.set()
    for thread in threads:
        thread.join(10)
    row = Organisation.objects.skip_cdms().get(cdms_pk=later)
    assert (row.employees, row.cdms_etag) == (2, newer["@odata.etag"])


@pytest.mark.django_db(transaction=True)
def test_a_page_never_writes_a_record_older_than_the_row(remote_client):
    """The soak's case on PostgreSQL: a resync's page compared its records with the rows it
    could lock, and a row a save had inserted but not committed was not among them. Once
    committed, and changed by a later save, the row was written over with the page's older
    record. Every page writer now compares versions with the rows it locks (on SQLite, the
    database locked)."""
    key = remote_client.create("accounts", {"name": "Compared Ltd", "numberofemployees": 1})[
        "accountid"
    ]
    read_before = remote_client.get("accounts", key, select=Organisation.cdms.select)
    load(Organisation, [remote_client.update("accounts", key, {"numberofemployees": 2})])
    load(Organisation, [read_before])
    assert Organisation.objects.skip_cdms().get(cdms_pk=key).employees == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("returning", [True, False], ids=["insert says", "read again"])
def test_a_row_stored_after_the_page_compared_is_compared_before_its_insert(
    remote_client, monkeypatch, returning
):
    """A record new when its page read the rows' ETags, whose row another process stores
    (a newer version) before the page writes: the page's insert leaves it out, says so, and
    the row is compared, not overwritten -- on both databases. Where an insert cannot say
    which rows it made (SQLite before 3.35), the page reads all its rows again instead."""
    if not returning:
        monkeypatch.setattr(loader, "returns_inserted_keys", lambda connection: False)
    key = remote_client.create("accounts", {"name": "Appeared Ltd", "numberofemployees": 1})[
        "accountid"
    ]
    read_before = remote_client.get("accounts", key, select=Organisation.cdms.select)
    newer = remote_client.update("accounts", key, {"numberofemployees": 2})
    read_etags, stored = loader.stored_etags, []

    def another_process_stores_the_row(model, keys, **kwargs):
        etags = read_etags(model, keys, **kwargs)
        if not stored:  # once, after the page read the ETags: the row was not there
            stored.append(newer)
            in_thread(lambda: load(Organisation, [newer])).join(10)
        return etags

    monkeypatch.setattr(loader, "stored_etags", another_process_stores_the_row)
    with CaptureQueriesContext(connection) as captured:
        load(Organisation, [read_before])
    row = Organisation.objects.skip_cdms().get(cdms_pk=key)
    assert (row.employees, row.cdms_etag) == (2, newer["@odata.etag"])
    assert not [q for q in captured if q["sql"].startswith("UPDATE")]


def in_thread(call: Callable[[], Any]) -> threading.Thread:
    """``call`` started in a thread of its own, with a database connection of its own."""

    def run() -> None:
        try:
            call()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{condition.__name__}: never"
        time.sleep(0.02)


def waiting_for_a_lock() -> bool:
    """Whether another connection of the test's database waits for a row lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
