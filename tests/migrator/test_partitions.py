"""A full resync split into ranges of ``createdon`` (``migrator.partitions``): in this process,
and spread over two real Celery worker processes."""

from __future__ import annotations

import datetime as dt
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cdms_api.errors import ServerError
from core.models import Organisation
from core.workers import worker_process
from migrator import partitions, remote
from migrator.partitions import Sample, range_filter
from migrator.resync import resync
from migrator.state import SeenKey, SyncPartition, SyncState
from migrator.tasks import resync_partitioned
from migrator.testing import assertNumRemoteCalls
from tests.migrator.crm import CRM
from tests.migrator.test_worker_process import wait_for
from tests.resync_support import (
    TEST_REDIS_URL,
    crm_client,
    load,
    local_state,
    remote_state,
    require_redis,
    resync_settings,
)

DAY0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


def migrated_accounts(count: int, prefix: str = "Migrated") -> list[dict]:
    """Accounts created on ``count`` different days (``overriddencreatedon``)."""
    return [
        {
            "name": f"{prefix} {i:05d}",
            "numberofemployees": i,
            "overriddencreatedon": (DAY0 + dt.timedelta(days=i)).isoformat(),
        }
        for i in range(count)
    ]


@pytest.fixture
def crm(cdms_simulator, settings, db):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator, PAGE_SIZE=10)
    remote.reset()
    client = crm_client(cdms_simulator)
    yield client
    client.close()


def test_the_sample_cuts_ranges_of_equal_size():
    sample = Sample(size=100)
    sample.add(DAY0 + dt.timedelta(days=i) for i in range(1000))
    assert sample.seen == 1000 and len(sample.values) == 100
    cuts = sample.cuts(4)
    assert len(cuts) == 3 and cuts == sorted(cuts)
    assert DAY0 + dt.timedelta(days=100) < cuts[0] < DAY0 + dt.timedelta(days=400)
    same = Sample()
    same.add([DAY0] * 50)
    assert same.cuts(4) == []  # one createdon for all: one range


def test_the_ranges_cover_every_record_once():
    a, b = DAY0, DAY0 + dt.timedelta(days=1)
    assert range_filter(None, None) is None
    assert str(range_filter(None, a)) == "createdon lt 2020-01-01T00:00:00Z or createdon eq null"
    assert str(range_filter(a, b)) == (
        "createdon ge 2020-01-01T00:00:00Z and createdon lt 2020-01-02T00:00:00Z"
    )
    assert str(range_filter(b, None)) == "createdon ge 2020-01-02T00:00:00Z"


def test_a_partitioned_full_resync_reads_each_range_and_merges(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(60))  # with the 10 of the seed: 70
    stale = Organisation.objects.skip_cdms().create(name="Gone remotely", cdms_pk=uuid.uuid4())
    # the keys: 7 pages of 10; the ranges: 23, 23 and 24 records, 3 pages each; nothing per
    # record
    with assertNumRemoteCalls(7 + 9):
        outcome = partitions.resync_partitioned(Organisation, 3)
    assert outcome.ran and outcome.kinds == ("full",)
    assert (outcome.created, outcome.deleted) == (70, 1)
    assert not Organisation.objects.skip_cdms().filter(pk=stale.pk).exists()
    assert local_state(Organisation) == remote_state(crm, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert state.status == "ok" and state.phase == "" and "$deltatoken=" in state.delta_link
    assert state.records_done == 70 + 1 and state.last_full_at  # read, and deleted
    assert not SyncPartition.objects.exists() and not SeenKey.objects.exists()

    crm.update("accounts", crm.iter("accounts", top=1).__next__()["accountid"], {"name": "New"})
    created = crm.create("accounts", {"name": "Created later", "numberofemployees": 5})
    assert resync(Organisation).kinds == ("incremental",)  # the delta link carries on
    # with every mapped property, though the plan's own read asked for keys alone
    row = Organisation.objects.skip_cdms().get(cdms_pk=created["accountid"])
    assert (row.name, row.employees, row.cdms_etag) == ("Created later", 5, created["@odata.etag"])
    assert Organisation.objects.skip_cdms().filter(name="New").count() == 1


def test_the_ranges_hold_about_equal_shares(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(90))
    numbers = partitions.plan(Organisation, 3)
    assert numbers == [0, 1, 2]
    sizes = [partitions.read_range(Organisation, n).records for n in numbers]
    assert sum(sizes) == 100 and all(20 <= size <= 45 for size in sizes), sizes
    assert partitions.merge(Organisation) is not None


def test_a_changes_made_while_the_ranges_are_read_come_with_the_next_incremental(
    cdms_simulator, crm
):
    keys = load(cdms_simulator, "accounts", migrated_accounts(30))
    numbers = partitions.plan(Organisation, 2)
    crm.delete("accounts", keys[0])  # seen by the plan, gone before its range is read
    for number in numbers:
        partitions.read_range(Organisation, number)
    partitions.merge(Organisation)
    outcome = resync(Organisation)
    assert outcome.kinds == ("incremental",)
    assert local_state(Organisation) == remote_state(crm, "accounts")


def test_a_resync_waits_while_a_partitioned_run_is_in_progress(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(30))
    numbers = partitions.plan(Organisation, 2)
    partitions.read_range(Organisation, numbers[0])
    outcome = resync(Organisation, full=True)
    assert not outcome.ran and "(1 of 2 ranges read)" in outcome.note
    assert partitions.merge(Organisation, wait_s=0.1) is None  # a range is left
    assert partitions.plan(Organisation, 2) == [numbers[1]]  # planning again: what is left


def test_a_range_that_failed_goes_on_from_its_last_page(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(40))
    numbers = partitions.plan(Organisation, 1)
    cdms_simulator.add_faults({"path": "/accounts$", "status": 400, "times": 1, "method": "GET"})
    cdms_simulator.clear_journal()
    with pytest.raises(Exception, match="HTTP 400"):
        partitions.read_range(Organisation, numbers[0])
    part = SyncPartition.objects.get()
    assert part.records_done == 0 and not part.done
    partitions.read_range(Organisation, numbers[0])
    assert SyncPartition.objects.get().done
    assert partitions.merge(Organisation).created == 50


@pytest.mark.django_db(transaction=True)
def test_the_ranges_are_read_by_celery_workers_and_merged(cdms_simulator, settings, tmp_path):
    require_redis()
    queue = f"cdms-test-{uuid.uuid4().hex}"
    settings.CDMS = resync_settings(cdms_simulator, PAGE_SIZE=20)
    remote.reset()
    load(cdms_simulator, "accounts", migrated_accounts(120))
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    with (
        worker_process(queue, logs[0].open("w"), TEST_REDIS_URL, settings.CDMS),
        worker_process(queue, logs[1].open("w"), TEST_REDIS_URL, settings.CDMS),
    ):
        resync_partitioned.apply_async(("core.Organisation", 4), queue=queue)
        state = SyncState.objects.filter(model="core.Organisation")
        wait_for(lambda: state.filter(status="ok").exists(), what="the merge")
    text = "".join(log.read_text() for log in logs)
    assert text.count("Task migrator.resync_partition[") >= 4  # a task per range
    crm = crm_client(cdms_simulator)
    assert local_state(Organisation) == remote_state(crm, "accounts")
    assert state.get().created == 130 and not SyncPartition.objects.exists()
    crm.close()


def test_cdms_resync_full_with_partitions_in_this_process(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(30))
    out = StringIO()
    call_command("cdms_resync", "core.Organisation", "--full", "--partitions", "3", stdout=out)
    assert out.getvalue().startswith("core.Organisation: full in ")
    assert "40 created" in out.getvalue() and "read in ranges of createdon" in out.getvalue()
    assert local_state(Organisation) == remote_state(crm, "accounts")
    with pytest.raises(CommandError, match="with --full"):
        call_command("cdms_resync", "--partitions", "3", stdout=out)


def plan_stopped_after_its_first_page(cdms_simulator) -> None:
    """A plan whose read of keys failed on its second page: its checkpoint is a link of that
    read, and no range was cut yet."""
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts$", "action": "pass", "times": 1},
        {"method": "GET", "path": "/accounts$", "status": 500, "times": None},
    )
    with pytest.raises(ServerError):
        partitions.plan(Organisation, 3)
    cdms_simulator.clear_faults()
    state = SyncState.objects.get(model="core.Organisation")
    assert state.checkpoint and not state.partitions.exists()


def test_an_ordinary_resync_after_a_plan_that_stopped_reads_every_property(cdms_simulator, crm):
    """The plan's checkpoint reads keys alone: a full resync does not go on from it."""
    load(cdms_simulator, "accounts", migrated_accounts(30))
    plan_stopped_after_its_first_page(cdms_simulator)
    resync(Organisation)
    keys = remote_state(crm, "accounts")
    assert local_state(Organisation) == keys
    CRM(crm).assert_all_in_sync(Organisation, keys)


def test_a_plan_that_stopped_begins_again_once_its_link_expired(cdms_simulator, crm):
    load(cdms_simulator, "accounts", migrated_accounts(30))
    plan_stopped_after_its_first_page(cdms_simulator)
    cdms_simulator.expire_changes("accounts")
    outcome = partitions.resync_partitioned(Organisation, 3)
    assert outcome.ran and "expired" in outcome.note
    keys = remote_state(crm, "accounts")
    assert local_state(Organisation) == keys
    CRM(crm).assert_all_in_sync(Organisation, keys)
