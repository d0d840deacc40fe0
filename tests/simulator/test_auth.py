"""The OAuth2 token endpoint (client credentials) and bearer-token checks on the Web API."""

from __future__ import annotations

import base64
import time
from urllib.parse import quote_plus

import pytest
import requests
from werkzeug.test import Client

from cdms_api.simulator import Simulator

GRANT = "client_credentials"


def token_request(cdms_simulator, url: str | None = None, **form):
    data = {
        "grant_type": GRANT,
        "client_id": cdms_simulator.client_id,
        "client_secret": cdms_simulator.client_secret,
        "scope": cdms_simulator.root_url + "/.default",
    }
    data.update(form)
    return requests.post(
        url or cdms_simulator.token_url,
        data={k: v for k, v in data.items() if v is not None},
        timeout=10,
    )


def get_accounts(cdms_simulator, token: str | None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return requests.get(
        cdms_simulator.base_url + "accounts", params={"$top": "1"}, headers=headers, timeout=10
    )


def test_a_token_for_form_credentials(cdms_simulator):
    response = token_request(cdms_simulator)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == (
        "Bearer",
        3599,
        3599,
    )
    assert len(body["access_token"]) >= 32
    assert get_accounts(cdms_simulator, body["access_token"]).status_code == 200


def test_a_token_for_http_basic_credentials(cdms_simulator):
    response = requests.post(
        cdms_simulator.token_url,
        data={"grant_type": GRANT},
        auth=(cdms_simulator.client_id, cdms_simulator.client_secret),
        timeout=10,
    )
    assert response.status_code == 200
    assert get_accounts(cdms_simulator, response.json()["access_token"]).status_code == 200


def test_every_token_is_different(cdms_simulator):
    tokens = {token_request(cdms_simulator).json()["access_token"] for _ in range(3)}
    assert len(tokens) == 3


@pytest.mark.parametrize(
    "path", ["/oauth2/v2.0/token", "/my-tenant/oauth2/v2.0/token", "/my-tenant/oauth2/token"]
)
def test_the_token_endpoint_answers_on_the_entra_id_paths(cdms_simulator, path):
    response = token_request(cdms_simulator, cdms_simulator.root_url + path)
    assert response.status_code == 200
    assert get_accounts(cdms_simulator, response.json()["access_token"]).status_code == 200


@pytest.mark.parametrize(
    "form",
    [
        {"client_secret": "wrong"},
        {"client_secret": None},
        {"client_id": "someone-else"},
        {"client_id": None, "client_secret": None},
        {"client_secret": "sécret ✓"},
    ],
    ids=["wrong-secret", "no-secret", "unknown-client", "no-credentials", "non-ascii-secret"],
)
def test_bad_client_credentials_are_401_invalid_client(cdms_simulator, form):
    response = token_request(cdms_simulator, **form)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215")
    assert "access_token" not in body


def test_a_wrong_basic_secret_is_401(cdms_simulator):
    response = requests.post(
        cdms_simulator.token_url,
        data={"grant_type": GRANT},
        auth=(cdms_simulator.client_id, "wrong"),
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", None])
def test_another_grant_is_400_unsupported_grant_type(cdms_simulator, grant_type):
    response = token_request(cdms_simulator, grant_type=grant_type)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "unsupported_grant_type"
    assert body["error_codes"] == [70003]


def test_basic_credentials_are_form_url_decoded():
    """RFC 6749 2.3.1: client id and secret are form-urlencoded before Basic encoding."""
    simulator = Simulator(seed="none")
    client_id, secret = "app id+1", "s3cr&t: 100%+more"
    simulator.tokens.clients[client_id] = secret
    basic = base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()
    response = Client(simulator).post(
        "/oauth2/token", data={"grant_type": GRANT}, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    garbled = base64.b64encode(b"\xff\xfe:\xff").decode()
    response = Client(simulator).post(
        "/oauth2/token", data={"grant_type": GRANT}, headers={"Authorization": f"Basic {garbled}"}
    )
    assert response.status_code == 401


def test_the_api_without_a_token_is_401_with_a_challenge(cdms_simulator):
    response = get_accounts(cdms_simulator, None)
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "0x80072560",
            "message": "The user is not authenticated: a valid bearer token is required.",
        }
    }
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer authorization_uri=")
    assert f"resource_id={cdms_simulator.root_url}/" in challenge
    assert response.headers["OData-Version"] == "4.0"


@pytest.mark.parametrize(
    "scheme, token", [("Bearer", "made-up"), ("Basic", "Y2RtczpjZG1z"), ("Bearer", "")]
)
def test_the_api_with_an_invalid_token_is_401(cdms_simulator, scheme, token):
    response = get_accounts(cdms_simulator, token, scheme)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "0x80072560"


def test_the_bearer_scheme_is_case_insensitive(cdms_simulator):
    token = cdms_simulator.token()
    assert get_accounts(cdms_simulator, token, "bearer").status_code == 200


def test_writes_need_a_token_too(cdms_simulator):
    response = requests.post(cdms_simulator.base_url + "accounts", json={"name": "x"}, timeout=10)
    assert response.status_code == 401


def test_a_token_expires_after_its_lifetime(cdms_simulator):
    cdms_simulator.tokens(lifetime_s=1)
    response = token_request(cdms_simulator)
    assert response.json()["expires_in"] == 1
    assert response.json()["ext_expires_in"] == 1
    issued = time.monotonic()
    token = response.json()["access_token"]
    assert get_accounts(cdms_simulator, token).status_code == 200
    time.sleep(max(0.0, issued + 1.1 - time.monotonic()))
    expired = get_accounts(cdms_simulator, token)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "0x80072560"
    assert "WWW-Authenticate" in expired.headers
    # a fresh token works again
    assert get_accounts(cdms_simulator, cdms_simulator.token()).status_code == 200


def test_a_new_lifetime_applies_to_tokens_issued_after_it(cdms_simulator):
    before = cdms_simulator.token()
    cdms_simulator.tokens(lifetime_s=120)
    assert token_request(cdms_simulator).json()["expires_in"] == 120
    assert get_accounts(cdms_simulator, before).status_code == 200


def test_reset_restores_the_default_token_lifetime(cdms_simulator):
    cdms_simulator.tokens(lifetime_s=1)
    cdms_simulator.reset()
    assert token_request(cdms_simulator).json()["expires_in"] == 3599


def test_expire_all_invalidates_every_token_issued(cdms_simulator, api):
    other = cdms_simulator.token()
    assert api.get(api.base + "accounts", params={"$top": "1"}).status_code == 200
    cdms_simulator.tokens(expire_all=True)
    assert api.get(api.base + "accounts", params={"$top": "1"}).status_code == 401
    assert get_accounts(cdms_simulator, other).status_code == 401
    assert get_accounts(cdms_simulator, cdms_simulator.token()).status_code == 200


def test_the_token_endpoint_needs_no_token_and_the_admin_api_needs_none(cdms_simulator):
    cdms_simulator.tokens(expire_all=True)
    assert token_request(cdms_simulator).status_code == 200
    response = requests.get(cdms_simulator.root_url + "/__admin/faults", timeout=10)
    assert response.status_code == 200


# the v2.0 and v1 endpoints, as Entra ID answers them ---------------------------------------------
def v2_url(cdms_simulator) -> str:
    return cdms_simulator.root_url + "/my-tenant/oauth2/v2.0/token"


def test_the_v2_endpoint_wants_a_scope(cdms_simulator):
    response = token_request(cdms_simulator, v2_url(cdms_simulator), scope=None)
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["error_codes"]) == ("invalid_request", [900144])


def test_the_v2_endpoint_wants_dot_default_scopes_for_client_credentials(cdms_simulator):
    response = token_request(
        cdms_simulator,
        v2_url(cdms_simulator),
        scope=cdms_simulator.root_url + "/user_impersonation",
    )
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["error_codes"]) == ("invalid_scope", [1002012])
    assert "/.default" in body["error_description"]


def test_the_v2_endpoint_with_http_basic_credentials(cdms_simulator):
    basic = base64.b64encode(
        f"{cdms_simulator.client_id}:{cdms_simulator.client_secret}".encode()
    ).decode()
    response = requests.post(
        v2_url(cdms_simulator),
        data={"grant_type": GRANT, "scope": cdms_simulator.root_url + "/.default"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert response.status_code == 200
    assert get_accounts(cdms_simulator, response.json()["access_token"]).status_code == 200


def test_the_v1_endpoint_takes_a_resource(cdms_simulator):
    resource = cdms_simulator.root_url + "/"
    response = token_request(cdms_simulator, scope=None, resource=resource)
    assert response.status_code == 200
    assert response.json()["resource"] == resource


def test_openid_discovery_names_the_tenant_token_endpoint(cdms_simulator):
    response = requests.get(
        cdms_simulator.root_url + "/my-tenant/v2.0/.well-known/openid-configuration", timeout=10
    )
    assert response.status_code == 200
    document = response.json()
    assert document["token_endpoint"] == v2_url(cdms_simulator)
    assert document["authorization_endpoint"].endswith("/my-tenant/oauth2/v2.0/authorize")
