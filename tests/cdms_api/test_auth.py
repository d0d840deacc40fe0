"""The ways a client gets its bearer token -- a client secret, a certificate, any azure-core
``TokenCredential`` -- against the simulator's token endpoints, and what never shows a secret."""

from __future__ import annotations

import logging
import time
import traceback

import pytest
import responses
import trustme
from azure.core.credentials import AccessToken as AzureAccessToken

from cdms_api import errors
from cdms_api.auth import ClientSecret, TokenManager, default_scope
from cdms_api.certificate import ClientCertificate
from cdms_api.client import CDMSClient

ACME = "2faef9cc-507e-519d-a449-682b0526b00d"
CLIENT_ID = "4ad36c77-6a2f-4f43-9c61-1f3bd5f1b7de"


@pytest.fixture(scope="module")
def certificate_pem() -> bytes:
    """An RSA key and its certificate in one PEM, as an app registration's certificate."""
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    return ca.issue_cert(
        "cdms-client.example.com", key_type=trustme.KeyType.RSA
    ).private_key_and_cert_chain_pem.bytes()


def v2_token_url(simulator) -> str:
    return f"{simulator.root_url}/contoso.onmicrosoft.com/oauth2/v2.0/token"


def frames_and_texts(error: BaseException) -> list[str]:
    """What an error page or a debugger shows of a failure: the message, the chain, each
    frame's local variables (past the test's own frame)."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    tb = error.__traceback__.tb_next
    while tb is not None:
        texts.extend(repr(value) for value in tb.tb_frame.f_locals.values())
        tb = tb.tb_next
    return texts


def test_the_scope_defaults_to_the_base_urls_origin():
    assert default_scope("https://contoso.crm4.dynamics.com/api/data/v9.2/") == (
        "https://contoso.crm4.dynamics.com/.default"
    )


@responses.activate
def test_a_v2_endpoint_gets_the_default_scope_and_a_v1_endpoint_the_resource():
    base = "https://contoso.crm4.dynamics.com/api/data/v9.2/"
    for token_url in (
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
        "https://login.microsoftonline.com/contoso/oauth2/token",
    ):
        responses.add(responses.POST, token_url, json={"access_token": "t", "expires_in": 3599})
        responses.add(responses.GET, f"{base}WhoAmI", json={"UserId": ACME})
        CDMSClient(base, token_url=token_url, client_id="id", client_secret="s").whoami()
    v2_form, v1_form = responses.calls[0].request.body, responses.calls[2].request.body
    assert "scope=https%3A%2F%2Fcontoso.crm4.dynamics.com%2F.default" in v2_form
    assert "resource=" not in v2_form
    assert "resource=https%3A%2F%2Fcontoso.crm4.dynamics.com" in v1_form
    assert "grant_type=client_credentials" in v1_form and "client_secret=s" in v1_form


def test_a_client_secret_on_the_v2_endpoint(cdms_simulator):
    client = CDMSClient(
        cdms_simulator.base_url,
        token_url=v2_token_url(cdms_simulator),
        client_id=cdms_simulator.client_id,
        client_secret=cdms_simulator.client_secret,
    )
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"


def test_a_certificate_credential_signs_in(cdms_simulator, certificate_pem):
    cdms_simulator.register_certificate(CLIENT_ID, certificate_pem.decode())
    credential = ClientCertificate(
        v2_token_url(cdms_simulator),
        CLIENT_ID,
        certificate_pem,
        scope=default_scope(cdms_simulator.base_url),
    )
    client = CDMSClient(cdms_simulator.base_url, credential=credential)
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    assert client.session.auth.fetches == 1


def test_a_certificate_the_remote_does_not_know_is_refused(
    cdms_simulator, certificate_pem, tmp_path
):
    other = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "other.example.com", key_type=trustme.KeyType.RSA
    )
    cdms_simulator.register_certificate(CLIENT_ID, other.cert_chain_pems[0].bytes().decode())
    pem_file = tmp_path / "client.pem"
    pem_file.write_bytes(certificate_pem)
    credential = ClientCertificate(
        v2_token_url(cdms_simulator), CLIENT_ID, pem_file, default_scope(cdms_simulator.base_url)
    )
    with pytest.raises(errors.AuthError) as caught:
        CDMSClient(cdms_simulator.base_url, credential=credential).get("accounts", ACME)
    assert "invalid_client" in str(caught.value) and caught.value.status == 401
    key_text = certificate_pem.split(b"-----END")[0].splitlines()[3].decode()
    for text in frames_and_texts(caught.value):
        assert key_text not in text


class ManagedIdentity:
    """Stands in for azure-identity's credentials: azure-core's ``get_token(*scopes)``,
    answering with azure-core's own ``AccessToken``."""

    def __init__(self, simulator):
        self.simulator, self.scopes = simulator, []

    def get_token(self, *scopes: str, **kwargs) -> AzureAccessToken:
        self.scopes.append(scopes)
        return AzureAccessToken(self.simulator.token(), int(time.time()) + 3599)


def test_any_token_credential_is_asked_for_the_default_scope(cdms_simulator):
    identity = ManagedIdentity(cdms_simulator)
    client = CDMSClient(cdms_simulator.base_url, credential=identity)
    client.get("accounts", ACME)
    client.get("accounts", ACME)
    assert identity.scopes == [(default_scope(cdms_simulator.base_url),)]


def test_a_failing_credential_is_an_auth_error_naming_its_type(cdms_simulator):
    class Broken:
        def get_token(self, *scopes, **kwargs):
            raise RuntimeError("IMDS endpoint unreachable; secret=abc123")

    with pytest.raises(errors.AuthError, match="Broken gave no token") as caught:
        CDMSClient(cdms_simulator.base_url, credential=Broken()).get("accounts", ACME)
    assert "abc123" not in str(caught.value)


def test_an_object_without_get_token_is_refused():
    with pytest.raises(TypeError, match="get_token"):
        CDMSClient("https://contoso.crm.dynamics.com/api/data/v9.2/", credential=object())


def test_the_token_requests_debug_logs_carry_no_secret(cdms_simulator, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, requests-oauthlib's and oauthlib's included
    secret = ClientSecret(
        cdms_simulator.token_url,
        cdms_simulator.client_id,
        cdms_simulator.client_secret,
        default_scope(cdms_simulator.base_url),
    )
    tokens = TokenManager(secret)
    token = tokens.authorization((5, 30)).split()[1]
    assert cdms_simulator.client_secret not in caplog.text
    assert token not in caplog.text
    assert cdms_simulator.client_secret not in repr(secret) + repr(tokens)
