"""``manage.py check`` reads ``settings.CDMS`` as the client will: mistakes are reported at
start-up, not at the first query."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from cdms_api.simulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from migrator.settings_checks import check_deployment, check_settings

BASE = "https://contoso.crm4.dynamics.com/api/data/v9.2/"
TENANT = "6f1c2a4e-0000-4000-8000-000000000001"
SECRET = {"TENANT_ID": TENANT, "CLIENT_ID": "app-id", "CLIENT_SECRET": "s3cret"}


def found(cdms, deploy=False, debug=True) -> list[tuple[str, str, str]]:
    with override_settings(CDMS=cdms, DEBUG=debug):
        messages = check_deployment() if deploy else check_settings()
    return [(m.id, m.msg, m.hint or "") for m in messages]


def ids(cdms, **options) -> list[str]:
    return [id for id, _, _ in found(cdms, **options)]


def test_a_complete_setting_passes():
    assert found({"BASE_URL": BASE, "AUTH": SECRET, "PAGE_SIZE": 500}) == []


def test_an_unknown_key_is_an_error_suggesting_the_nearest_known_one():
    [(id, message, hint)] = found({"BASE_URL": BASE, "AUTH": SECRET, "PAGE_SZIE": 500})
    assert id == "migrator.E002" and "'PAGE_SZIE'" in message
    assert hint == "Did you mean 'PAGE_SIZE'?"
    [(_, message, hint)] = found({"BASE_URL": BASE, "AUTH": {**SECRET, "CLIENT_SECERT": "x"}})
    assert "AUTH" in message and hint == "Did you mean 'CLIENT_SECRET'?"
    [(_, _, hint)] = found(
        {"BASE_URL": BASE, "AUTH": SECRET, "GOVERNOR": {"URL": "redis://x", "CONCURENCY": 8}}
    )
    assert hint == "Did you mean 'CONCURRENCY'?"


def test_no_base_url_is_an_error():
    assert ids({"AUTH": SECRET}) == ["migrator.E003"]


@pytest.mark.parametrize(
    "base, token",
    [
        ("http://contoso.crm4.dynamics.com/api/data/v9.2/", None),
        (BASE, "http://login.microsoftonline.com/x/oauth2/v2.0/token"),
    ],
)
def test_plain_http_off_this_machine_is_an_error(base, token):
    auth = {**SECRET, "TOKEN_URL": token} if token else SECRET
    if token:
        del auth["TENANT_ID"]
    assert "migrator.E004" in ids({"BASE_URL": base, "AUTH": auth})


def test_plain_http_to_the_local_simulator_is_fine():
    auth = {
        "TOKEN_URL": "http://127.0.0.1:8765/oauth2/token",
        "CLIENT_ID": "a",
        "CLIENT_SECRET": "b",
    }
    assert ids({"BASE_URL": "http://127.0.0.1:8765/api/data/v9.2/", "AUTH": auth}) == []


@pytest.mark.parametrize(
    "auth, expected",
    [
        ({}, "has no AUTH"),
        ({"TENANT_ID": TENANT, "CLIENT_ID": "a"}, "has no credential"),
        ({"TENANT_ID": TENANT, "CLIENT_SECRET": "s"}, "needs CLIENT_ID"),
        ({"CLIENT_ID": "a", "CLIENT_SECRET": "s"}, "needs TENANT_ID"),
    ],
)
def test_missing_credentials_are_errors(auth, expected):
    [(id, message, _)] = found({"BASE_URL": BASE, "AUTH": auth})
    assert id == "migrator.E005" and expected in message


def test_two_credentials_are_an_error():
    auth = {**SECRET, "CERTIFICATE": __file__}
    assert "migrator.E006" in ids({"BASE_URL": BASE, "AUTH": auth})


def test_a_certificate_file_that_is_not_there_is_an_error():
    auth = {"TENANT_ID": TENANT, "CLIENT_ID": "a", "CERTIFICATE": "/nowhere/app.pem"}
    assert ids({"BASE_URL": BASE, "AUTH": auth}) == ["migrator.E008"]


def test_a_credential_without_get_token_is_an_error():
    assert ids({"BASE_URL": BASE, "AUTH": {"CREDENTIAL": "a string"}}) == ["migrator.E009"]


def test_a_token_credential_needs_nothing_else():
    class Identity:
        def get_token(self, *scopes):
            raise AssertionError("not called by a check")

    assert ids({"BASE_URL": BASE, "AUTH": {"CREDENTIAL": Identity()}}) == []


@pytest.mark.parametrize(
    "base, token_url",
    [
        (BASE, "https://login.microsoftonline.us/x/oauth2/v2.0/token"),
        (
            "https://contoso.crm.microsoftdynamics.us/api/data/v9.2/",
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        ),
        (
            "https://contoso.crm.dynamics.cn/api/data/v9.2/",
            "https://login.microsoftonline.com/x/oauth2/v2.0/token",
        ),
    ],
)
def test_a_token_url_of_another_cloud_is_an_error(base, token_url):
    auth = {"TOKEN_URL": token_url, "CLIENT_ID": "a", "CLIENT_SECRET": "s"}
    [(id, message, _)] = found({"BASE_URL": base, "AUTH": auth})
    assert id == "migrator.E007" and "issues no tokens for" in message


def test_a_token_url_of_another_tenant_is_an_error():
    auth = {**SECRET, "TOKEN_URL": "https://login.microsoftonline.com/fabrikam/oauth2/v2.0/token"}
    [(id, message, _)] = found({"BASE_URL": BASE, "AUTH": auth})
    assert id == "migrator.E007" and "'fabrikam'" in message


def test_the_sovereign_clouds_own_authorities_pass():
    auth = {
        "TENANT_ID": TENANT,
        "AUTHORITY_HOST": "https://login.microsoftonline.us",
        "CLIENT_ID": "a",
        "CLIENT_SECRET": "s",
    }
    assert (
        ids({"BASE_URL": "https://c.crm.microsoftdynamics.us/api/data/v9.2/", "AUTH": auth}) == []
    )


def test_deploy_warns_of_the_simulators_demo_credentials_and_url_with_debug_off():
    local = {
        "BASE_URL": "http://127.0.0.1:8765/api/data/v9.2/",
        "AUTH": {
            "TOKEN_URL": "http://127.0.0.1:8765/oauth2/token",
            "CLIENT_ID": DEMO_CLIENT_ID,
            "CLIENT_SECRET": DEMO_CLIENT_SECRET,
        },
    }
    assert ids(local, deploy=True, debug=False) == ["migrator.W002", "migrator.W003"]
    assert ids(local, deploy=True, debug=True) == []
    assert ids({"BASE_URL": BASE, "AUTH": SECRET}, deploy=True, debug=False) == []


def test_manage_py_check_stops_on_a_mistyped_key():
    cdms = {"BASE_URL": BASE, "AUTH": SECRET, "TIMEOUTS": (1, 2)}
    with (
        override_settings(CDMS=cdms),
        pytest.raises(SystemCheckError, match="Did you mean 'TIMEOUT'"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())
