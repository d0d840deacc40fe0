"""``manage.py cdms_ping`` and the health-check view, against the simulator."""

from __future__ import annotations

import contextlib
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from migrator import remote

pytestmark = pytest.mark.django_db


def test_ping_reports_token_whoami_and_each_entity_set(cdms_simulator_settings):
    out = StringIO()
    call_command("cdms_ping", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0] == cdms_simulator_settings.base_url
    steps = [line.split()[:2] for line in lines[1:-1]]
    assert steps[:2] == [["ok", "token"], ["ok", "WhoAmI"]]
    assert {name for _, name in steps[2:]} >= {"accounts", "contacts"}
    assert all(flag == "ok" for flag, _ in steps)
    assert lines[-1].startswith("  all well:")
    journal = [e["path"] for e in cdms_simulator_settings.journal()]
    assert journal.count("/oauth2/token") == 1 and "/api/data/v9.2/WhoAmI" in journal


def test_ping_fails_and_says_why_when_the_credentials_are_refused(
    cdms_simulator_settings, settings
):
    settings.CDMS = {
        **settings.CDMS,
        "AUTH": {**settings.CDMS["AUTH"], "CLIENT_SECRET": "not-the-secret-99"},
    }
    remote.reset()
    out = StringIO()
    with pytest.raises(CommandError, match="not reachable"):
        call_command("cdms_ping", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is False
    [token] = report["steps"]  # nothing else is tried without a token
    assert token["name"] == "token" and "invalid_client" in token["detail"]
    assert "not-the-secret-99" not in out.getvalue()


def test_a_failing_entity_set_fails_the_ping_and_the_others_are_still_tried(
    cdms_simulator_settings,
):
    cdms_simulator_settings.add_faults({"path": "/contacts$", "status": 403, "times": None})
    report = json.loads(_ping_json())
    by_name = {step["name"]: step for step in report["steps"]}
    assert report["ok"] is False
    assert by_name["contacts"]["ok"] is False and "AuthError" in by_name["contacts"]["detail"]
    assert by_name["accounts"]["ok"] is True


def _ping_json() -> str:
    out = StringIO()
    with contextlib.suppress(CommandError):
        call_command("cdms_ping", "--json", stdout=out)
    return out.getvalue()


def test_the_health_view_answers_200_or_503(cdms_simulator_settings, client):
    response = client.get("/health/cdms/")
    assert response.status_code == 200 and response.json()["ok"] is True
    assert response["Cache-Control"].startswith("max-age=0")
    cdms_simulator_settings.add_faults({"path": "/WhoAmI", "status": 503, "times": None})
    response = client.get("/health/cdms/")
    assert response.status_code == 503
    assert response.json()["steps"][1]["name"] == "WhoAmI"


def test_a_django_cache_shares_the_token_between_clients(cdms_simulator_settings, settings):
    settings.CDMS = {**settings.CDMS, "TOKEN_CACHE": "default"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    for _ in range(3):  # three clients, as three processes sharing the cache would build them
        remote.reset()
        call_command("cdms_ping", stdout=StringIO())
    journal = [e["path"] for e in cdms_simulator_settings.journal()]
    assert journal.count("/oauth2/token") == 1
    assert "DjangoTokenCache('default')" in repr(remote.client().session.auth.cache)
