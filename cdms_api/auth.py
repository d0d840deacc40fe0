"""OAuth2 client-credentials tokens for the Web API: fetched, cached, renewed before expiry.

oauthlib (through requests-oauthlib) builds the token request and validates the answer; the
request itself goes through the client's own pooled ``requests`` session, so its timeouts and
TLS settings apply, and so does a loopback ``http://`` token URL for the local simulator."""

from __future__ import annotations

import threading
import time

import requests
import requests.auth
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error

from .errors import AuthError, MalformedResponse, RemoteTimeout, TransportError


class ClientCredentials:
    """A bearer token for ``client_id``, renewed ``renew_margin_s`` before it expires."""

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        renew_margin_s: float = 60.0,
    ):
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self.__secret = client_secret
        self.renew_margin_s = renew_margin_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"ClientCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def authorization(self, http: requests.Session, timeout: tuple[float, float]) -> str:
        """The ``Authorization`` header value, fetching a token when there is none fresh."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at - self.renew_margin_s:
                self._fetch(http, timeout)
            return f"Bearer {self._token}"

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self, http: requests.Session, timeout: tuple[float, float]) -> None:
        oauth = BackendApplicationClient(client_id=self.client_id)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            response = http.post(  # the body is built in the call: no variable holds the secret
                self.token_url,
                data=oauth.prepare_request_body(
                    scope=[self.scope] if self.scope else None,
                    include_client_id=True,
                    client_secret=self.__secret,
                ),
                headers=headers,
                timeout=timeout,
            )
        except requests.Timeout as error:
            raise RemoteTimeout(
                f"token request timed out: {type(error).__name__}",
                method="POST",
                url=self.token_url,
            ) from None
        except requests.RequestException as error:
            raise TransportError(
                f"token request failed: {type(error).__name__}", method="POST", url=self.token_url
            ) from None
        if response.status_code != 200:
            raise AuthError(
                _describe_refusal(response),
                status=response.status_code,
                method="POST",
                url=self.token_url,
            )
        try:
            token = oauth.parse_request_body_response(response.text, scope=None)
        except (OAuth2Error, ValueError) as error:
            raise MalformedResponse(
                f"the token endpoint answered an unusable token: {type(error).__name__}",
                status=200,
                method="POST",
                url=self.token_url,
            ) from None
        lifetime = float(token.get("expires_in") or 3600)
        self._token = token["access_token"]
        self._expires_at = time.monotonic() + lifetime
        self.fetches += 1


def _describe_refusal(response: requests.Response) -> str:
    try:
        body = response.json()
        return f"the token endpoint refused the credentials: {body.get('error', 'error')}"
    except ValueError:
        return "the token endpoint refused the credentials"


class BearerAuth(requests.auth.AuthBase):
    """Puts the bearer token on each request as it is sent, so that the token lives only in
    the request itself: not in the caller's variables, where a debugger's or an error page's
    dump of local variables would show it."""

    def __init__(
        self, credentials: ClientCredentials, http: requests.Session, timeout: tuple[float, float]
    ):
        self.credentials, self.http, self.timeout = credentials, http, timeout

    def __repr__(self) -> str:
        return f"BearerAuth({self.credentials!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.credentials.authorization(self.http, self.timeout)
        return request
