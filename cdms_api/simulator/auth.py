"""An OAuth2 token endpoint (client-credentials grant) and bearer-token checks.

A client proves itself with a secret, or with a certificate: a JWT signed by the certificate's
key (``client_assertion``), checked as Microsoft Entra ID checks it (the "certificate
credentials" page of the Microsoft identity platform): the signature (PS256 or RS256) against
the certificate registered for the client (``x5t#S256`` or ``x5t`` naming it), ``aud`` the
token URL, ``iss`` and ``sub`` the client id, ``exp`` to come. Checking assertions needs PyJWT
with cryptography (the ``certificate`` extra).

The demo credentials are fixed and public; they only ever open this simulator."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

try:
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
except ModuleNotFoundError:  # then only secrets open the simulator
    jwt = None

DEMO_CLIENT_ID = "cdms-demo-client"
DEMO_CLIENT_SECRET = "cdms-demo-secret"
DEFAULT_LIFETIME_S = 3599
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class TokenIssuer:
    clients: dict[str, str] = field(default_factory=lambda: {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET})
    #: client id -> the PEM certificate whose key signs its assertions
    certificates: dict[str, bytes] = field(default_factory=dict)
    lifetime_s: float = DEFAULT_LIFETIME_S
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _configured_lifetime_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(
        self, form: dict[str, str], authorization: str | None, v2: bool = False, url: str = ""
    ) -> tuple[int, dict]:
        """Answer a token request to ``url``: (status, JSON body), shaped as Microsoft Entra ID
        answers.

        The v2.0 endpoint wants ``scope``, and with client credentials only ``<resource>/.default``
        scopes; the v1 endpoint takes ``resource`` (the simulator does not insist on it)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode()
            except ValueError:
                decoded = ":"
            user, _, password = decoded.partition(":")
            # RFC 6749 2.3.1: both are form-urlencoded before the Basic encoding
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if form.get("grant_type") != "client_credentials":
            return 400, oauth_error(
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
                70003,
            )
        if v2 and (refusal := scope_refusal(form.get("scope"))):
            return 400, refusal
        if "client_assertion" in form:
            refusal = self.assertion_refusal(form, url)
            if refusal is not None:
                return refusal
            return 200, self.token_for(form["client_id"], form, v2)
        expected = self.clients.get(client_id or "")
        if expected is None or not secrets.compare_digest(
            expected.encode(), (client_secret or "").encode()
        ):
            return 401, oauth_error(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided, or unknown client.",
                7000215,
            )
        return 200, self.token_for(client_id, form, v2)

    def token_for(self, client_id: str, form: dict[str, str], v2: bool) -> dict:
        token = secrets.token_urlsafe(32)
        lifetime = self.lifetime_s
        with self._lock:
            self._tokens[token] = (client_id, time.monotonic() + lifetime)
        answer = {
            "token_type": "Bearer",
            "expires_in": int(lifetime),
            "ext_expires_in": int(lifetime),
            "access_token": token,
        }
        if not v2 and form.get("resource"):
            answer["resource"] = form["resource"]
        return answer

    def register_certificate(self, client_id: str, pem: str | bytes) -> None:
        """Let ``client_id`` sign in with the key of this certificate (PEM)."""
        if jwt is None:
            raise ValueError("checking certificate credentials needs PyJWT and cryptography")
        data = pem.encode() if isinstance(pem, str) else pem
        x509.load_pem_x509_certificate(data)  # a ValueError if it is none
        with self._lock:
            self.certificates[client_id] = data

    def assertion_refusal(self, form: dict[str, str], url: str) -> tuple[int, dict] | None:
        """Why a client assertion does not prove the client, as Entra ID says it; or None."""
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return 400, oauth_error(
                "invalid_request",
                f"AADSTS50027: The client_assertion_type must be '{ASSERTION_TYPE}'.",
                50027,
            )
        if jwt is None:
            return 400, oauth_error(
                "invalid_request", "The simulator checks assertions with PyJWT: not installed.", 0
            )
        client_id, assertion = form.get("client_id") or "", form["client_assertion"]
        pem = self.certificates.get(client_id)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            header = {}
        certificate = x509.load_pem_x509_certificate(pem) if pem else None
        if certificate is None or header.get("x5t#S256", header.get("x5t")) not in thumbprints(
            certificate
        ):
            return 401, oauth_error(
                "invalid_client",
                f"AADSTS700027: The certificate with identifier used to sign the client "
                f"assertion is not registered on application. [Reason - The key was not found., "
                f"Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
                f"configured keys for app Id '{client_id}'.]",
                700027,
            )
        try:
            claims = jwt.decode(
                assertion,
                certificate.public_key(),
                algorithms=["PS256", "RS256"],
                audience=url,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            return 401, oauth_error(
                "invalid_client",
                "AADSTS700024: Client assertion is not within its valid time range.",
                700024,
            )
        except jwt.InvalidAudienceError:
            return 401, oauth_error(
                "invalid_client",
                "AADSTS700016: The client assertion's audience claim does not match the "
                "token endpoint.",
                700016,
            )
        except jwt.PyJWTError:
            return 401, oauth_error(
                "invalid_client",
                "AADSTS7000274: Client assertion failed signature validation.",
                7000274,
            )
        if claims["iss"] != client_id or claims["sub"] != client_id:
            return 401, oauth_error(
                "invalid_client",
                "AADSTS700021: Client assertion application identifier doesn't match "
                "'client_id' parameter.",
                700021,
            )
        return None

    def client_of(self, authorization: str | None) -> str | None:
        """The client a valid ``Authorization: Bearer`` header belongs to, or None."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        with self._lock:
            entry = self._tokens.get(token.strip())
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def override_lifetime(self, seconds: float) -> None:
        """Issue tokens valid for ``seconds`` from now on, until ``restore_lifetime()``."""
        with self._lock:
            if self._configured_lifetime_s is None:
                self._configured_lifetime_s = self.lifetime_s
            self.lifetime_s = seconds

    def restore_lifetime(self) -> None:
        """Back to the lifetime the simulator was started with."""
        with self._lock:
            if self._configured_lifetime_s is not None:
                self.lifetime_s = self._configured_lifetime_s
                self._configured_lifetime_s = None

    def expire_all(self) -> None:
        with self._lock:
            self._tokens.clear()


def thumbprints(certificate) -> set[str]:
    """The certificate's SHA-256 (``x5t#S256``) and SHA-1 (``x5t``) thumbprints, base64url."""
    return {
        base64.urlsafe_b64encode(certificate.fingerprint(digest)).rstrip(b"=").decode()
        for digest in (hashes.SHA256(), hashes.SHA1())
    }


def oauth_error(error: str, description: str, code: int) -> dict:
    return {"error": error, "error_description": description, "error_codes": [code]}


def scope_refusal(scope: str | None) -> dict | None:
    """Entra ID's refusal of a v2.0 client-credentials request's scope, or None."""
    if not scope or not scope.strip():
        return oauth_error(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope'.",
            900144,
        )
    for item in scope.split():
        if not item.endswith("/.default"):
            return oauth_error(
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {item} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed to the "
                "resource identifier (application ID URI).",
                1002012,
            )
    return None


def openid_configuration(host_url: str, tenant: str) -> dict:
    """The OpenID discovery document of a tenant, as MSAL reads it before asking for tokens."""
    authority = f"{host_url.rstrip('/')}/{tenant}"
    return {
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "issuer": f"{authority}/v2.0",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "token"],
        "grant_types_supported": ["client_credentials"],
        "tenant_region_scope": None,
    }
