"""Bearer tokens for the Web API: where they come from, how long they are kept, who shares them.

A *token source* asks Microsoft Entra ID (or the simulator) for a token: ``ClientSecret`` and
``ClientCertificate`` send the OAuth2 client-credentials grant through requests-oauthlib's
``OAuth2Session``; ``Credential`` asks any object with azure-core's ``get_token(*scopes)`` (a
managed identity of azure-identity, say). ``TokenManager`` keeps the token, renews it
``renew_margin_s`` before it expires and once on a 401, and shares it through a ``TokenCache``:
one token request per expiry for every process that shares the cache.

Secrets stay out of logs, reprs, exceptions and the local variables of a traceback: they live
in name-mangled attributes, are read in the call that sends them, and every error is raised
outside the frames that held them."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests
import requests.auth
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests_oauthlib import OAuth2Session

from .errors import AuthError, CDMSError, MalformedResponse, RemoteTimeout, TransportError
from .net import is_loopback

logger = logging.getLogger("cdms_api.auth")
Timeout = tuple[float, float]


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it expires, in seconds since the epoch (azure-core's shape)."""

    token: str = field(repr=False)
    expires_on: float

    def fresh(self, margin_s: float) -> bool:
        return time.time() < self.expires_on - margin_s


class TokenSource(Protocol):
    """Where tokens come from. ``cache_key`` tells its tokens apart in a shared cache: it
    names the authority, the client and the scope, never a secret."""

    cache_key: str

    def fetch(self, timeout: Timeout) -> AccessToken: ...


class TokenCache(Protocol):
    """Tokens shared by the processes of one application user (``cdms_api.shared`` keeps them
    in Redis, ``migrator.shared`` in a Django cache)."""

    def get(self, key: str) -> AccessToken | None: ...

    def put(self, key: str, token: AccessToken) -> None: ...

    def discard(self, key: str, token: str) -> None:
        """Forget the token under ``key`` if it is still ``token`` (the remote refused it)."""

    def renewing(self, key: str) -> AbstractContextManager[object]:
        """Held while one process renews the token: the others wait, then find it cached."""


class LocalTokenCache:
    """This process's tokens only: the default."""

    def __init__(self) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return "LocalTokenCache()"

    def get(self, key: str) -> AccessToken | None:
        return self._tokens.get(key)

    def put(self, key: str, token: AccessToken) -> None:
        self._tokens[key] = token

    def discard(self, key: str, token: str) -> None:
        with self._guard:
            if (held := self._tokens.get(key)) is not None and held.token == token:
                del self._tokens[key]

    def renewing(self, key: str) -> AbstractContextManager[object]:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def default_scope(base_url: str) -> str:
    """``<the base URL's origin>/.default``: every permission the app user has on it."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


def _above_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


# requests-oauthlib logs the token request's form (the secret) and the answer (the token) at
# DEBUG, whatever the application's logging says: those records are dropped where they arise
logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_above_debug)
_insecure_guard = threading.Lock()


@contextlib.contextmanager
def _loopback_transport(token_url: str) -> Iterator[None]:
    """oauthlib refuses plain HTTP unless told otherwise through the environment; the local
    simulator speaks plain HTTP on loopback, and only there is that allowed (any other http
    URL is refused before a source is built)."""
    if urlsplit(token_url).scheme == "https":
        yield
        return
    with _insecure_guard:
        before = os.environ.get("OAUTHLIB_INSECURE_TRANSPORT")
        os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        try:
            yield
        finally:
            if before is None:
                del os.environ["OAUTHLIB_INSECURE_TRANSPORT"]
            else:
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = before


class _Refused(Exception):
    def __init__(self, status: int, error: str):
        super().__init__(error)
        self.status, self.error = status, error


def _refusal(response: requests.Response) -> requests.Response:
    """requests-oauthlib's ``access_token_response`` hook: a refusal keeps its status."""
    if response.status_code != 200:
        try:
            error = str(response.json().get("error") or "error")
        except (ValueError, AttributeError):
            error = "error"
        raise _Refused(response.status_code, error)
    return response


class OAuthClientCredentials:
    """The client-credentials grant (RFC 6749 4.4) through ``OAuth2Session``. ``v2.0``
    endpoints get ``scope``; the older v1 endpoint gets ``resource`` (the scope's origin)."""

    def __init__(self, token_url: str, client_id: str, scope: str):
        if urlsplit(token_url).scheme != "https" and not is_loopback(urlsplit(token_url).hostname):
            raise ValueError(f"refusing the non-HTTPS token URL {token_url!r}")
        self.token_url, self.client_id, self.scope = token_url, client_id, scope
        self.cache_key = "|".join(["client", token_url, client_id, scope])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def _session(self) -> OAuth2Session:
        session = OAuth2Session(client=BackendApplicationClient(client_id=self.client_id))
        session.trust_env = False  # no proxy or CA bundle from the environment, as the API's
        session.max_redirects = 0  # a 307 would send the credential on to wherever it points
        session.register_compliance_hook("access_token_response", _refusal)
        return session

    def _grant(self, timeout: Timeout, credential: Callable[[], dict[str, str]]) -> AccessToken:
        """Ask for a token; ``credential`` gives the client's proof, built inside the call
        so that no frame of a raised error holds it."""
        v2 = "/v2.0/" in urlsplit(self.token_url).path
        audience = (
            {"scope": [self.scope]} if v2 else {"resource": self.scope.removesuffix("/.default")}
        )
        failure: CDMSError | None = None
        asked_at = time.time()  # the lifetime counts from the request, to be safe
        try:
            with self._session() as session, _loopback_transport(self.token_url):
                token = _access_token(
                    asked_at,
                    session.fetch_token(
                        self.token_url,
                        include_client_id=True,
                        timeout=timeout,
                        **audience,
                        **credential(),
                    ),
                )
        except _Refused as refused:
            failure = AuthError(
                f"the token endpoint refused the credentials: {refused.error}",
                status=refused.status,
                method="POST",
                url=self.token_url,
            )
        except requests.Timeout as error:
            failure = RemoteTimeout(f"token request timed out: {type(error).__name__}")
        except requests.RequestException as error:
            failure = TransportError(f"token request failed: {type(error).__name__}")
        except (OAuth2Error, ValueError, KeyError) as error:
            failure = MalformedResponse(
                f"the token endpoint answered an unusable token: {type(error).__name__}",
                status=200,
            )
        if failure is not None:
            failure.method, failure.url = "POST", self.token_url
            raise failure  # out here: its traceback holds no frame that saw the credential
        return token


def _access_token(asked_at: float, answer: dict[str, Any]) -> AccessToken:
    return AccessToken(answer["access_token"], asked_at + float(answer.get("expires_in") or 3600))


class ClientSecret(OAuthClientCredentials):
    """An app registration's client secret."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str):
        super().__init__(token_url, client_id, scope)
        self.__secret = client_secret

    def fetch(self, timeout: Timeout) -> AccessToken:
        return self._grant(timeout, lambda: {"client_secret": self.__secret})


class Credential:
    """Any object with azure-core's ``TokenCredential`` method ``get_token(*scopes)``, such as
    azure-identity's ``ManagedIdentityCredential`` or ``DefaultAzureCredential``: the object
    keeps its own secrets; this asks it for the scope's token."""

    def __init__(self, credential: Any, scope: str):
        if not callable(getattr(credential, "get_token", None)):
            raise TypeError(f"{type(credential).__name__} has no get_token(*scopes) method")
        self.credential, self.scope = credential, scope
        self.cache_key = "|".join(["credential", type(credential).__qualname__, scope])

    def __repr__(self) -> str:
        return f"Credential({type(self.credential).__name__}, scope={self.scope!r})"

    def fetch(self, timeout: Timeout) -> AccessToken:
        failure: CDMSError | None = None
        try:
            token = _from_credential(self.credential.get_token(self.scope))
        except Exception as error:  # whatever the credential raises, reported by its type
            failure = AuthError(
                f"{type(self.credential).__name__} gave no token for {self.scope}: "
                f"{type(error).__name__}"
            )
        if failure is not None:
            raise failure
        return token


def _from_credential(answer: Any) -> AccessToken:
    return AccessToken(answer.token, float(answer.expires_on))


class TokenManager:
    """The token a session sends: kept in this process, shared through ``cache``, renewed
    ``renew_margin_s`` before it expires by one process at a time."""

    def __init__(
        self,
        source: TokenSource,
        cache: TokenCache | None = None,
        renew_margin_s: float = 60.0,
    ):
        self.source, self.cache = source, cache or LocalTokenCache()
        self.renew_margin_s = renew_margin_s
        self._token: AccessToken | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # token requests this process made

    def __repr__(self) -> str:
        return f"TokenManager({self.source!r})"

    def authorization(self, timeout: Timeout) -> str:
        """The ``Authorization`` header value, renewing the token when it is not fresh."""
        with self._lock:
            if self._token is None or not self._token.fresh(self.renew_margin_s):
                self._token = self._shared(timeout)
            return f"Bearer {self._token.token}"

    def _shared(self, timeout: Timeout) -> AccessToken:
        key = self.source.cache_key
        cached = self.cache.get(key)
        if cached is not None and cached.fresh(self.renew_margin_s):
            return cached
        with self.cache.renewing(key):
            cached = self.cache.get(key)  # another process may have renewed it meanwhile
            if cached is not None and cached.fresh(self.renew_margin_s):
                return cached
            token = self.source.fetch(timeout)
            self.fetches += 1
            self.cache.put(key, token)
            logger.info("token from %r, valid %.0f s", self.source, token.expires_on - time.time())
            return token

    def invalidate(self) -> None:
        """The remote refused the token (401): forget it here and, if no other process has
        renewed it already, in the shared cache."""
        with self._lock:
            if self._token is not None:
                self.cache.discard(self.source.cache_key, self._token.token)
            self._token = None


class BearerAuth(requests.auth.AuthBase):
    """Puts the bearer token on each request as it is sent, so that the token lives only in
    the request itself: not in the caller's variables, where a debugger's or an error page's
    dump of local variables would show it."""

    def __init__(self, tokens: TokenManager, timeout: Timeout):
        self.tokens, self.timeout = tokens, timeout

    def __repr__(self) -> str:
        return f"BearerAuth({self.tokens!r})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = self.tokens.authorization(self.timeout)
        return request
