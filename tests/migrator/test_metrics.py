"""What operators see: the Prometheus metrics (``migrator.metrics``, the ``metrics/`` view)
and the structured log lines of remote requests and sync decisions, against the simulator."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from prometheus_client import REGISTRY

from core.models import Organisation
from migrator.metrics import entity_set_of
from migrator.verify import verify
from tests.seeded import NORTHWIND


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_entity_sets_are_named_from_the_url():
    base = "http://127.0.0.1:1/api/data/v9.2/"
    assert entity_set_of(base + "accounts(2faef9cc-507e-519d-a449-682b0526b00d)") == "accounts"
    assert entity_set_of(base + "contacts?$top=1") == "contacts"
    assert entity_set_of(base + "$batch") == "$batch"
    assert entity_set_of("http://127.0.0.1:1/oauth2/token") == "other"


def test_requests_retries_throttling_and_records_synced_are_counted(
    cdms_simulator, django_capture_on_commit_callbacks
):
    get = {"entity_set": "accounts", "method": "GET"}
    before = {
        "ok": sample("cdms_remote_requests_total", **get, status="200"),
        "503": sample("cdms_remote_requests_total", **get, status="503"),
        "retries": sample("cdms_remote_retries_total", **get),
        "429": sample("cdms_remote_throttled_total", entity_set="accounts"),
        "waited": sample("cdms_remote_retry_wait_seconds_total", reason="throttled"),
        "latency": sample("cdms_remote_request_seconds_count", **get),
        "created": sample("cdms_records_synced_total", model="core.Organisation", change="created"),
    }
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts$", "status": 503},
        {"method": "GET", "path": "/accounts$", "status": 429, "headers": {"Retry-After": "0.2"}},
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert Organisation.objects.filter(name=NORTHWIND).count() == 1
    assert sample("cdms_remote_requests_total", **get, status="200") == before["ok"] + 1
    assert sample("cdms_remote_requests_total", **get, status="503") == before["503"] + 1
    assert sample("cdms_remote_retries_total", **get) == before["retries"] + 2
    assert sample("cdms_remote_throttled_total", entity_set="accounts") == before["429"] + 1
    assert sample("cdms_remote_request_seconds_count", **get) == before["latency"] + 3
    waited = sample("cdms_remote_retry_wait_seconds_total", reason="throttled")
    assert waited - before["waited"] == pytest.approx(0.2)  # Retry-After
    created = sample("cdms_records_synced_total", model="core.Organisation", change="created")
    assert created == before["created"] + 1


def test_the_metrics_view_shows_the_counters_lag_and_drift(cdms_simulator, client, crm, synced):
    crm.change(NORTHWIND, numberofemployees=4)
    verify(Organisation)
    response = client.get("/health/cdms/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'cdms_remote_requests_total{entity_set="accounts",method="GET",status="200"}' in text
    assert 'cdms_drift_records{model="core.Organisation"} 1.0' in text
    assert 'cdms_verify_age_seconds{model="core.Organisation"}' in text
    assert "cdms_resync_lag_seconds" in text


def test_one_log_line_says_why_a_query_made_its_requests(crm, synced, caplog):
    caplog.set_level(logging.DEBUG, logger="migrator")
    crm.drop(NORTHWIND)
    list(Organisation.objects.filter(name__in=[NORTHWIND, "Nobody"]))
    [decision] = [r for r in caplog.records if getattr(r, "cdms", {}).get("read")]
    assert decision.cdms == {
        "model": "core.Organisation",
        "read": "filtered",
        "filter": "Microsoft.Dynamics.CRM.In(PropertyName='name',"
        "PropertyValues=['Northwind Traders','Nobody'])",
        "top": None,
        "expand": None,
        "related": 0,
        "records": 0,
        "rechecked": 1,  # the row the read did not return, read by key: gone
        "deleted": 0,
    }
    assert "sync read=filtered" in decision.getMessage()
    assert "rechecked=1" in decision.getMessage()
    requests = [r for r in caplog.records if getattr(r, "cdms", {}).get("method")]
    assert len(requests) == 2  # the read, then the recheck by key
    for request in requests:
        assert request.cdms["entity_set"] == "accounts" and request.cdms["status"] == 200
        assert "$filter" not in request.getMessage() and "Northwind" not in request.getMessage()


def test_cdms_status_ends_with_the_counters(cdms_simulator):
    list(Organisation.objects.filter(name=NORTHWIND))
    out = StringIO()
    call_command("cdms_status", stdout=out)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("remote (this process): ") and " requests, " in last
    assert last.endswith(" s waited")


COUNT_ONE = """
from cdms_api.session import RequestRecord
from migrator.metrics import count_request
count_request(RequestRecord("GET", "http://h/api/data/v9.2/accounts", 503, 0.01, 2))
"""
SUMMARY = "from migrator.metrics import summary; print(summary())"


def test_with_a_multiprocess_directory_the_counts_of_every_process_add_up(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", COUNT_ONE], env=env, check=True, timeout=60)
    shown = subprocess.run(
        [sys.executable, "-c", SUMMARY], env=env, check=True, timeout=60, capture_output=True
    )
    assert shown.stdout.decode().startswith(
        "remote (all processes): 2 requests, 2 failed, 0 throttled, 2 retries"
    )
