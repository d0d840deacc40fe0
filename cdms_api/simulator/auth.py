"""An OAuth2 token endpoint (client-credentials grant) and bearer-token checks.

The demo credentials are fixed and public; they only ever open this simulator."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

DEMO_CLIENT_ID = "cdms-demo-client"
DEMO_CLIENT_SECRET = "cdms-demo-secret"
DEFAULT_LIFETIME_S = 3599


@dataclass
class TokenIssuer:
    clients: dict[str, str] = field(default_factory=lambda: {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET})
    lifetime_s: float = DEFAULT_LIFETIME_S
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    _configured_lifetime_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(
        self, form: dict[str, str], authorization: str | None, v2: bool = False
    ) -> tuple[int, dict]:
        """Answer a token request: (status, JSON body), shaped as Microsoft Entra ID answers.

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
        expected = self.clients.get(client_id or "")
        if expected is None or not secrets.compare_digest(
            expected.encode(), (client_secret or "").encode()
        ):
            return 401, oauth_error(
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided, or unknown client.",
                7000215,
            )
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
        return 200, answer

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
