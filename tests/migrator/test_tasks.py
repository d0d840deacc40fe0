"""The Celery tasks with the real Redis broker and a real worker (``worker``: in this
process, on threads of its own): full and incremental resyncs, one at a time, a 429 storm, an
expired delta link, a table without change tracking. The worker killed halfway is in
``test_worker_process.py``."""

from __future__ import annotations

import logging
import os
import time

import pytest
from celery.signals import task_retry

from cdms_api.simulator.seed import demo_key
from core import celery_app
from core.models import Contact, Organisation
from migrator import remote
from migrator.state import SyncState
from migrator.tasks import resync_all, resync_model, verify_all
from tests.resync_support import (
    accounts,
    load,
    local_state,
    remote_state,
    resync_settings,
)
from tests.seeded import NORTHWIND

pytestmark = pytest.mark.django_db(transaction=True)
WAIT_S = 120


@pytest.fixture(autouse=True)
def cdms_resync(cdms_simulator, settings, worker):
    settings.CDMS = resync_settings(cdms_simulator)
    remote.reset()
    return cdms_simulator


def run(label: str, full: bool = False) -> dict:
    return resync_model.delay(label, full=full).get(timeout=WAIT_S)


def api_requests(simulator) -> list[dict]:
    return [e for e in simulator.journal() if e["path"].startswith("/api/data/")]


def test_a_full_resync_of_12000_records(cdms_simulator, remote_client):
    load(cdms_simulator, "accounts", accounts(12_000))
    cdms_simulator.clear_journal()
    outcome = run("core.Organisation", full=True)
    assert outcome["ran"] and outcome["kinds"] == ["full"]
    assert (outcome["created"], outcome["updated"], outcome["deleted"]) == (12_010, 0, 0)
    assert len(api_requests(cdms_simulator)) == 3  # pages of 5,000
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert (state.status, state.phase, state.records_done) == ("ok", "", 12_010)


def test_an_incremental_resync_makes_one_request_and_touches_only_what_changed(
    cdms_simulator, remote_client
):
    run("core.Organisation")
    before = dict(Organisation.objects.skip_cdms().values_list("cdms_pk", "modified"))
    changed = [str(k) for k in list(before)[:3]]
    deleted = [str(k) for k in list(before)[3:5]]
    for number, key in enumerate(changed):
        remote_client.update("accounts", key, {"numberofemployees": 9000 + number})
    for key in deleted:
        remote_client.delete("accounts", key)
    cdms_simulator.clear_journal()

    outcome = run("core.Organisation")

    assert outcome["kinds"] == ["incremental"]
    assert (outcome["created"], outcome["updated"], outcome["deleted"]) == (0, 3, 2)
    (request,) = api_requests(cdms_simulator)
    assert request["method"] == "GET" and "deltatoken" in request["query"]
    after = dict(Organisation.objects.skip_cdms().values_list("cdms_pk", "modified"))
    assert {str(k) for k in before} - {str(k) for k in after} == set(deleted)
    touched = {str(k) for k, modified in after.items() if modified != before[k]}
    assert touched == set(changed)
    assert local_state(Organisation) == remote_state(remote_client, "accounts")


def test_two_resyncs_started_together_one_runs(cdms_simulator):
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts$", "times": None, "action": "pass", "delay_ms": 1500}
    )
    first, second = (resync_model.delay("core.Organisation") for _ in range(2))
    outcomes = [first.get(timeout=WAIT_S), second.get(timeout=WAIT_S)]
    assert sorted(o["ran"] for o in outcomes) == [False, True]
    refused = next(o for o in outcomes if not o["ran"])
    assert refused["note"] == "a resync of it is running already"
    assert refused["seconds"] < 1.0


def test_a_429_storm_is_survived_through_celery_retries(cdms_simulator, remote_client):
    load(cdms_simulator, "accounts", accounts(20))
    cdms_simulator.add_faults(
        {
            "method": "GET",
            "path": "/accounts$",
            "times": 5,
            "status": 429,
            "headers": {"Retry-After": "1"},
        }
    )
    retried = []

    def on_retry(request, reason, **kwargs):
        retried.append(type(reason.exc).__name__)

    task_retry.connect(on_retry)
    started = time.monotonic()
    try:
        outcome = run("core.Organisation")
    finally:
        task_retry.disconnect(on_retry)
    assert outcome["ran"] and outcome["created"] == 30
    # the client tried three times, then Celery retried the task after Retry-After
    assert retried == ["Throttled"]
    statuses = [e["status"] for e in api_requests(cdms_simulator)]
    assert statuses[:6] == [429] * 5 + [200]
    assert time.monotonic() - started >= 5  # every Retry-After honoured
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    state = SyncState.objects.get(model="core.Organisation")
    assert state.status == "ok" and state.last_error == ""


def test_a_permanent_error_is_recorded_and_reported(cdms_simulator):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 400})
    with pytest.raises(Exception, match="An unexpected error occurred"):
        run("core.Organisation")
    state = SyncState.objects.get(model="core.Organisation")
    assert state.status == "failed"
    assert state.last_error.startswith("BadRequest: An unexpected error occurred")


def test_an_expired_delta_link_is_recovered_by_a_full_resync(cdms_simulator, remote_client, caplog):
    run("core.Organisation")
    remote_client.update(
        "accounts", str(Organisation.objects.skip_cdms().first().cdms_pk), {"name": "New"}
    )
    cdms_simulator.expire_changes("accounts")
    with caplog.at_level(logging.WARNING, logger="migrator.resync"):
        outcome = run("core.Organisation")
    assert outcome["kinds"] == ["full"] and outcome["updated"] == 1
    assert "the delta link had expired" in outcome["note"]
    assert "the delta link had expired" in caplog.text
    state = SyncState.objects.get(model="core.Organisation")
    assert "the delta link had expired" in state.note and state.delta_link
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    assert run("core.Organisation")["kinds"] == ["incremental"]


def test_a_table_without_change_tracking_is_kept_in_step_by_watermark_and_sweep(
    cdms_simulator, remote_client, settings
):
    cdms_simulator.change_tracking("contacts", False)
    run("core.Organisation")
    first = run("core.Contact")
    assert first["kinds"] == ["full"] and first["created"] == 6
    state = SyncState.objects.get(model="core.Contact")
    assert state.mode == "watermark" and state.watermark and not state.delta_link

    time.sleep(1)  # modifiedon counts whole seconds
    created = remote_client.create("contacts", {"lastname": "Newcomer"})["contactid"]
    keys = [str(k) for k in Contact.objects.skip_cdms().values_list("cdms_pk", flat=True)]
    remote_client.update("contacts", keys[0], {"lastname": "Changed"})
    remote_client.delete("contacts", keys[1])
    cdms_simulator.clear_journal()
    by_watermark = run("core.Contact")
    assert by_watermark["kinds"] == ["incremental"]
    assert (by_watermark["created"], by_watermark["updated"], by_watermark["deleted"]) == (1, 1, 0)
    (request,) = api_requests(cdms_simulator)
    assert "modifiedon+ge+" in request["query"]
    assert Contact.objects.skip_cdms().filter(cdms_pk=keys[1]).exists()  # no sweep due yet

    settings.CDMS = {**settings.CDMS, "SWEEP_EVERY_S": 0}
    swept = run("core.Contact")
    assert swept["kinds"] == ["incremental", "sweep"] and swept["deleted"] == 1
    assert local_state(Contact) == remote_state(remote_client, "contacts")
    assert Contact.objects.skip_cdms().filter(cdms_pk=created).exists()


def test_resync_all_queues_every_synced_model_related_first(cdms_simulator):
    labels = resync_all.delay().get(timeout=WAIT_S)
    assert labels.index("core.Organisation") < labels.index("core.Contact")
    assert labels.index("secondapp.Company") < labels.index("secondapp.Person")
    deadline = time.monotonic() + WAIT_S
    while SyncState.objects.filter(status="ok").count() < len(labels):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert Contact.objects.skip_cdms().count() == 6


def test_beat_runs_the_incremental_resync_of_every_model_every_few_minutes():
    entry = celery_app.conf.beat_schedule["cdms-incremental-resync"]
    assert entry["task"] == "migrator.resync_all" == resync_all.name
    assert entry["schedule"] == float(os.environ.get("CDMS_RESYNC_EVERY_S", "300"))
    assert {"migrator.resync_all", "migrator.resync_model"} <= set(celery_app.tasks)


def test_verify_all_runs_on_the_workers_and_beat_runs_it_every_day(cdms_simulator, remote_client):
    run("core.Organisation")
    remote_client.update("accounts", demo_key(NORTHWIND), {"numberofemployees": 3})
    assert "core.Organisation" in verify_all.delay().get(timeout=WAIT_S)
    deadline = time.monotonic() + WAIT_S
    while not SyncState.objects.filter(model="core.Organisation", drift__isnull=False).exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    state = SyncState.objects.get(model="core.Organisation")
    assert state.drift == 1 and state.verify_report["counts"]["values differ"] == 1
    entry = celery_app.conf.beat_schedule["cdms-verify"]
    assert entry["task"] == "migrator.verify_all" == verify_all.name
    assert entry["schedule"] == float(os.environ.get("CDMS_VERIFY_EVERY_S", "86400"))
