"""The resync engine in this process (``migrator.resync``): what a run writes, deletes,
skips and keeps, how it resumes, and the signals it fires. The Celery tasks, with a real
broker and worker, are in ``test_tasks.py``."""

from __future__ import annotations

import pytest
import redis
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.test.utils import CaptureQueriesContext

from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation
from migrator import remote, signals
from migrator.inbound import write_page
from migrator.locks import LockLost, ResyncLock, lock_url, redis_client
from migrator.resync import resync, synced_models
from migrator.state import SeenKey, SyncState
from migrator.testing import assertNumRemoteCalls
from tests.resync_support import (
    accounts,
    load,
    local_state,
    remote_state,
    require_redis,
    resync_settings,
)
from tests.secondapp.models import Address, Company, Person, Sample
from tests.seeded import ACME, ADA

ACME_KEY = demo_key(ACME)


@pytest.fixture(autouse=True)
def cdms_resync(cdms_simulator, settings):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator, PAGE_SIZE=10)
    remote.reset()
    return cdms_simulator


def test_synced_models_come_after_the_models_they_point_at():
    models = synced_models()
    assert set(models) == {Organisation, Contact, Company, Person, Sample, Address}
    assert models.index(Organisation) < models.index(Contact)
    assert models.index(Company) < models.index(Person)
    assert models.index(Company) < models.index(Address)


def test_a_full_resync_fills_the_table_page_by_page_and_keeps_the_delta_link(
    cdms_simulator, remote_client
):
    load(cdms_simulator, "accounts", accounts(35))
    with assertNumRemoteCalls(5):  # 45 records, pages of 10
        outcome = resync(Organisation)
    assert outcome.ran and outcome.kinds == ("full",)
    assert (outcome.created, outcome.updated, outcome.deleted) == (45, 0, 0)
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert state.status == "ok" and state.phase == "" and state.mode == "changes"
    assert "$deltatoken=" in state.delta_link and state.last_full_at
    assert state.records_done == 45
    assert not SeenKey.objects.exists()
    # nothing changed since: one request, nothing written
    with assertNumRemoteCalls(1):
        again = resync(Organisation)
    assert again.kinds == ("incremental",)
    assert (again.created, again.updated, again.deleted) == (0, 0, 0)


def test_an_incremental_resync_that_finds_nothing_writes_its_state_once(remote_client):
    """One request answered with no change: the new delta link and the run's outcome in one
    UPDATE, nothing else written locally (no RUNNING status, no checkpoint, no purge)."""
    resync(Organisation)
    before = SyncState.objects.get(model="core.Organisation")
    with assertNumRemoteCalls(1), CaptureQueriesContext(connection) as captured:
        outcome = resync(Organisation)
    assert outcome.kinds == ("incremental",)
    assert (outcome.created, outcome.updated, outcome.deleted) == (0, 0, 0)
    writes = [q["sql"] for q in captured if not q["sql"].lstrip().upper().startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith('UPDATE "migrator_syncstate"'), writes
    state = SyncState.objects.get(model="core.Organisation")
    assert (state.status, state.phase, state.checkpoint, state.last_error) == ("ok", "", "", "")
    assert "$deltatoken=" in state.delta_link
    assert state.last_incremental_at > before.last_full_at
    assert (state.created, state.updated, state.deleted, state.records_done) == (0, 0, 0, 0)


def test_an_incremental_resync_writes_the_page_it_read_to_see_what_changed(
    cdms_simulator, remote_client
):
    """The first page, read to see whether anything changed, is written, not read again:
    15 changes are two pages of 10, two requests."""
    resync(Organisation)
    load(cdms_simulator, "accounts", accounts(15, prefix="Later"))
    with assertNumRemoteCalls(2):
        outcome = resync(Organisation)
    assert outcome.kinds == ("incremental",) and outcome.created == 15
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert (state.status, state.phase, state.checkpoint) == ("ok", "", "")


def test_an_incremental_resync_goes_on_from_the_page_it_read_first(cdms_simulator, remote_client):
    """By watermark (a table without change tracking), the records modified since come in
    pages: the first, read to see whether anything changed, is written with the rest, and no
    page is read twice."""
    cdms_simulator.change_tracking("accounts", False)
    resync(Organisation)
    load(cdms_simulator, "accounts", accounts(15, prefix="Later"))
    cdms_simulator.clear_journal()
    outcome = resync(Organisation)  # the seeded records are in the overlap too: 3 pages
    pages = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")]
    assert outcome.kinds == ("incremental",) and outcome.created == 15
    assert len(pages) == len({e["query"] for e in pages}) > 1
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert (state.status, state.phase, state.checkpoint, state.mode) == ("ok", "", "", "watermark")


def test_a_full_resync_deletes_the_rows_whose_record_is_gone_and_only_those(remote_client):
    resync(Organisation)
    gone = remote_client.create("accounts", {"name": "Gone soon"})["accountid"]
    resync(Organisation)
    local_only = Organisation(name="Never synced")
    local_only.save(skip_cdms=True)
    remote_client.delete("accounts", gone)
    outcome = resync(Organisation, full=True)
    assert outcome.deleted == 1
    assert not Organisation.objects.skip_cdms().filter(cdms_pk=gone).exists()
    assert Organisation.objects.skip_cdms().filter(pk=local_only.pk).exists()


def test_rows_written_during_a_full_resync_are_not_taken_for_gone(remote_client):
    written = []

    def user_creates_a_row(sender, **kwargs):
        if not written:  # during the resync's first page: a row of a record it read before
            row = Organisation(
                name="Created meanwhile", cdms_pk="1a0e2b52-2f38-4f8b-9d6d-5c6e1d9ad001"
            )
            written.append(row)
            row.save(skip_cdms=True)

    post_save.connect(user_creates_a_row, sender=Organisation)
    try:
        resync(Organisation)
    finally:
        post_save.disconnect(user_creates_a_row, sender=Organisation)
    assert Organisation.objects.skip_cdms().filter(pk=written[0].pk).exists()


def stopped_after_two_pages() -> SyncState:
    """A resync stopped (as a worker killed) once it wrote two pages of 10: its state."""

    def crash_after_two_pages(done, total):
        if done >= 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        resync(Organisation, progress=crash_after_two_pages)
    return SyncState.objects.get(model="core.Organisation")


def test_a_run_stopped_halfway_goes_on_from_its_checkpoint(cdms_simulator, remote_client):
    load(cdms_simulator, "accounts", accounts(40))
    state = stopped_after_two_pages()
    assert (state.status, state.phase, state.records_done) == ("failed", "full", 20)
    assert "$skiptoken=" in state.checkpoint
    cdms_simulator.clear_journal()
    outcome = resync(Organisation)  # an incremental resync asked: the full one goes on first
    assert outcome.kinds == ("full",) and outcome.created == 50
    pages = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")]
    assert len(pages) == 3  # 30 records left: pages 3, 4 and 5, none read twice
    assert local_state(Organisation) == remote_state(remote_client, "accounts")


def test_an_incremental_run_stopped_halfway_through_its_changes_goes_on_from_its_checkpoint(
    cdms_simulator, remote_client
):
    """Changes come in pages as records do: a run stopped after two pages of 10 keeps the
    change feed's next link, and the next run reads the two pages left, then the new delta
    link. Changes made in between come with the delta after it."""
    resync(Organisation)
    keys = load(cdms_simulator, "accounts", accounts(30, prefix="New"))
    for key in keys[:8]:
        remote_client.delete("accounts", key)
    remote_client.update("accounts", ACME_KEY, {"numberofemployees": 7})
    state = stopped_after_two_pages()
    assert (state.status, state.phase, state.records_done) == ("failed", "incremental", 20)
    assert "$deltatoken=" in state.checkpoint and "$skiptoken=" in state.checkpoint
    remote_client.update("accounts", keys[10], {"name": "Changed in between"})  # read already
    cdms_simulator.clear_journal()
    with assertNumRemoteCalls(2):  # 31 changes: pages 3 and 4, none read twice
        outcome = resync(Organisation)
    assert outcome.kinds == ("incremental",)
    assert local_state(Organisation) != remote_state(remote_client, "accounts")
    with assertNumRemoteCalls(1):
        resync(Organisation)
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    assert Organisation.objects.skip_cdms().get(cdms_pk=keys[10]).name == "Changed in between"


def test_a_stale_record_never_overwrites_a_newer_local_write(remote_client):
    resync(Organisation)
    read_before = remote_client.get("accounts", ACME_KEY, select=Organisation.cdms.select)
    acme = Organisation.objects.skip_cdms().get(cdms_pk=ACME_KEY)
    acme.employees = 1500
    acme.save()  # remote first, then the local row holds what the CRM stored
    written = write_page(Organisation, [read_before])  # a resync page read before the save
    assert written.stale == 1 and not written
    acme.refresh_from_db()
    assert acme.employees == 1500
    assert acme.cdms_etag == remote_client.get("accounts", ACME_KEY)["@odata.etag"]


def test_a_locked_resync_returns_at_once_saying_so():
    with ResyncLock("core.Organisation") as held, assertNumRemoteCalls(0):
        assert held
        outcome = resync(Organisation)
    assert not outcome.ran and "running already" in str(outcome)
    assert not SyncState.objects.filter(model="core.Organisation").exists()


def test_a_run_that_lost_its_lock_stops_writing_and_leaves_the_state_to_the_next(
    cdms_simulator, remote_client, settings
):
    """The lock expired under a stalled run (here: taken from it); a second full resync
    began, and forgot the keys the first had seen. The first stops at its next page, before
    it could delete rows whose keys it no longer has as seen."""
    load(cdms_simulator, "accounts", accounts(30))
    resync(Organisation)
    second = []

    def stalled(done, total):
        if done == 10 and not second:
            name = settings.CDMS.get("LOCK_PREFIX", "cdms:resync:") + "core.Organisation"
            redis_client(lock_url()).delete(name)  # the lock expired
            second.append(resync(Organisation, full=True))

    with pytest.raises(LockLost):
        resync(Organisation, full=True, progress=stalled)
    assert second[0].ran and second[0].kinds == ("full",)
    state = SyncState.objects.get(model="core.Organisation")
    assert state.status == "ok" and state.phase == ""  # as the second run left it
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    assert resync(Organisation).kinds == ("incremental",)


def test_locks_keep_their_redis_connection_from_one_to_the_next(monkeypatch):
    """Every resync and changes-backed read takes a lock: they share one connection pool,
    which opens no connection for a lock taken after another was released."""
    with ResyncLock("core.Organisation") as held:
        assert held
    made = []
    make_connection = redis.ConnectionPool.make_connection

    def counted(pool):
        made.append(pool)
        return make_connection(pool)

    monkeypatch.setattr(redis.ConnectionPool, "make_connection", counted)
    for _ in range(3):
        with ResyncLock("core.Organisation") as held:
            assert held
    assert not made


def test_inbound_writes_fire_post_save_post_delete_and_records_synced(
    remote_client, django_capture_on_commit_callbacks
):
    resync(Contact)
    heard = []

    def saved(sender, instance, created, **kwargs):
        heard.append(
            ("saved", str(instance), created, signals.is_inbound(), kwargs.get("cdms_sync"))
        )

    def deleted(sender, instance, **kwargs):
        heard.append(("deleted", str(instance), signals.is_inbound()))

    def synced(sender, created, updated, deleted, **kwargs):
        heard.append(("page", sender, len(created), len(updated), len(deleted)))

    new = remote_client.create("contacts", {"firstname": "Mary", "lastname": "Jackson"})
    remote_client.update("contacts", demo_key(ADA), {"lastname": "King"})
    remote_client.delete("contacts", demo_key("Alan Turing"))
    post_save.connect(saved, sender=Contact)
    post_delete.connect(deleted, sender=Contact)
    signals.records_synced.connect(synced)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            resync(Contact)
        Contact.objects.skip_cdms().get(cdms_pk=new["contactid"]).save()  # a user's write
    finally:
        post_save.disconnect(saved, sender=Contact)
        post_delete.disconnect(deleted, sender=Contact)
        signals.records_synced.disconnect(synced)
    assert sorted(heard[:3], key=str) == [
        ("deleted", "Alan Turing", True),
        ("saved", "Ada King", False, True, True),
        ("saved", "Mary Jackson", True, True, True),
    ]
    assert heard[3] == ("page", Contact, 1, 1, 1)
    assert heard[4] == ("saved", "Mary Jackson", False, False, None)


def test_a_lock_in_this_process_alone(settings):
    """``memory://``: for a project in one process, no Redis needed."""
    settings.CDMS = {**settings.CDMS, "LOCK_URL": "memory://"}
    with ResyncLock("core.Organisation") as held:
        assert held
        assert resync(Organisation).ran is False
    assert resync(Organisation).ran
