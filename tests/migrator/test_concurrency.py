"""Writers at the same time: ``select_for_update()`` syncs, locks the local rows, and the save
that follows carries the ETag; ``get_or_create()``/``update_or_create()`` from two processes
(threads with database connections of their own here) make one record, the second getting
the first's row."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections, transaction

from cdms_api.errors import PreconditionFailed
from core.models import Organisation
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
def test_get_or_create_from_two_processes_makes_one_record(crm, slow_creates):
    results = in_threads(
        *(
            lambda n=n: Organisation.objects.get_or_create(
                name="Raced Ltd", defaults={"employees": n}
            )
            for n in (1, 2)
        )
    )
    assert not any(isinstance(r, Exception) for r in results), results
    (first, first_created), (second, second_created) = results
    assert sorted([first_created, second_created]) == [False, True]
    assert first.pk == second.pk and first.cdms_pk == second.cdms_pk
    assert len(crm.find("accounts", "name", "Raced Ltd")) == 1
    assert Organisation.objects.skip_cdms().filter(name="Raced Ltd").count() == 1
    crm.assert_in_sync(Organisation, str(first.cdms_pk))


@pytest.mark.django_db(transaction=True)
def test_update_or_create_from_two_processes_makes_one_record(crm, slow_creates):
    results = in_threads(
        *(
            lambda n=n: Organisation.objects.update_or_create(
                name="Updated Race Ltd", defaults={"employees": n}
            )
            for n in (1, 2)
        )
    )
    assert not any(isinstance(r, Exception) for r in results), results
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0].pk == results[1][0].pk
    [record] = crm.find("accounts", "name", "Updated Race Ltd")
    _, second = sorted(results, key=lambda r: r[1], reverse=True)
    assert record["numberofemployees"] == second[0].employees  # the second wrote last
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
