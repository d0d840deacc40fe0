"""The HTTP session every remote call goes through: connection pooling, bearer auth, timeouts,
retries, logging and request hooks. Callers see ``request()`` and typed errors.

Retries follow one rule: a request is tried again only when repeating it cannot do harm.
Throttling (429), 503 and connections that were never established mean the remote did not act,
so any request may be repeated. A read timeout, a dropped connection, 502 or 504 leave the
outcome unknown, so only requests the caller marks ``idempotent`` are repeated after them.

What the remote answers is read with bounds: a body past ``max_body_bytes`` (64 MiB; the
largest page Dataverse sends is a fraction of it) is refused unread, and a redirect is never
followed (the Web API does not redirect; one may point at a host the token must not see):
both are ``MalformedResponse``."""

from __future__ import annotations

import email.utils
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import codec
from .auth import BearerAuth, TokenManager
from .errors import (
    CDMSError,
    MalformedResponse,
    RemoteTimeout,
    Throttled,
    TransportError,
    error_for_status,
)
from .governor import Governor, Permit, priority
from .net import is_loopback
from .retry import AMBIGUOUS_STATUSES, RETRY_STATUSES, RetryPolicy

logger = logging.getLogger("cdms_api")
MAX_BODY_BYTES = 64 * 2**20
CHUNK_BYTES = 256 * 2**10


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP attempt, as reported to request listeners (``params``: its query options)."""

    method: str
    url: str
    status: int | None
    duration_s: float
    attempt: int
    error: str | None = None
    params: dict[str, str] | None = None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def check_base_url(url: str) -> str:
    """HTTPS, or plain HTTP to a loopback address only (the local simulator)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
        return url if url.endswith("/") else url + "/"
    raise ValueError(f"refusing the non-HTTPS remote URL {url!r}: only loopback may use http")


class CDMSSession:
    def __init__(
        self,
        base_url: str,
        auth: TokenManager | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
        pool_size: int = 10,
        sleep: Callable[[float], None] = time.sleep,
        governor: Governor | None = None,
    ):
        self.base_url = check_base_url(base_url)
        self.auth, self.timeout, self.governor = auth, timeout, governor
        self.retry = retry or RetryPolicy()
        self.listeners: list[Callable[[RequestRecord], None]] = []
        #: told of each wait before a retry: its seconds, and whether a 429 asked for it
        self.wait_listeners: list[Callable[[float, bool], None]] = []
        self.http = requests.Session()
        self.http.verify = True
        self.http.trust_env = False
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("https://", adapter)
        self.http.mount("http://", adapter)
        self.http.headers.update(
            {
                "Accept": "application/json",
                "OData-MaxVersion": "4.0",
                "OData-Version": "4.0",
                "User-Agent": "django-cdms",
            }
        )
        self._sleep = sleep
        self.max_body_bytes = MAX_BODY_BYTES
        self._bearer = None if auth is None else BearerAuth(auth, timeout)

    def __repr__(self) -> str:
        return f"CDMSSession(base_url={self.base_url!r}, auth={self.auth!r})"

    def close(self) -> None:
        self.http.close()

    def url(self, path_or_url: str) -> str:
        """A path under the base URL, or a link the remote gave (``@odata.nextLink``), which
        must stay on the base URL's scheme and host: the bearer token goes nowhere else."""
        url = urljoin(self.base_url, path_or_url)
        if urlsplit(url)[:2] != urlsplit(self.base_url)[:2]:
            raise MalformedResponse(f"the remote pointed at another host: {urlsplit(url).netloc}")
        return url

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        idempotent: bool,
        params: dict[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send a request, retrying as the module docstring says; raise a ``CDMSError``
        subclass for any answer that is not a success."""
        url = self.url(path_or_url)
        if json is not None:
            data = codec.dumps(json)
            headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        started, attempt, renewed = time.monotonic(), 0, False
        # An attempt that may have been applied leaves the outcome of the request unknown,
        # whatever a later attempt answers: the error raised in the end is ``ambiguous``
        # (and ``in_flight`` when an attempt timed out: the remote may apply it yet).
        uncertain = in_flight = False
        while True:
            attempt += 1
            permit = None if self.governor is None else self.governor.admit(priority())
            sent = time.perf_counter()
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=self._bearer,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
                read_bounded(response, self.max_body_bytes, method, url)
            except MalformedResponse:
                self._release(permit, sent)
                raise
            except requests.RequestException as exc:
                self._release(permit, sent)
                error = self._transport_error(exc, method, url)
                self._report(method, url, params, None, sent, attempt, type(error).__name__)
                if self._may_retry(error.ambiguous, idempotent, attempt, started, None):
                    uncertain |= error.ambiguous
                    in_flight |= error.in_flight
                    continue
                error.ambiguous |= uncertain
                error.in_flight |= in_flight
                raise error from None
            self._release(permit, sent)
            self._report(method, url, params, response.status_code, sent, attempt, None)
            status = response.status_code
            if response.is_redirect:
                location = urlsplit(urljoin(url, response.headers["Location"])).netloc
                raise MalformedResponse(
                    f"the remote answered a redirect to {location}: redirects are not followed",
                    status=status,
                    method=method,
                    url=url,
                )
            if status < 400:
                return response
            if status == 401 and self.auth is not None and not renewed:
                self.auth.invalidate()
                renewed = True
                continue
            error = self._http_error(response, method, url)
            retry_after = error.retry_after if isinstance(error, Throttled) else None
            if status == 429 and self.governor is not None:
                self.governor.throttled(retry_after)
            if status in RETRY_STATUSES and self._may_retry(
                status in AMBIGUOUS_STATUSES,
                idempotent,
                attempt,
                started,
                retry_after,
                throttled=status == 429,
            ):
                uncertain |= error.ambiguous
                continue
            error.ambiguous |= uncertain
            error.in_flight |= in_flight
            raise error

    @staticmethod
    def _release(permit: Permit | None, sent: float) -> None:
        """The governor's slot is given back as soon as the answer is in, before any wait."""
        if permit is not None:
            permit.release(time.perf_counter() - sent)

    def _may_retry(
        self,
        ambiguous: bool,
        idempotent: bool,
        attempt: int,
        started: float,
        retry_after: float | None,
        throttled: bool = False,
    ) -> bool:
        if (ambiguous and not idempotent) or attempt >= self.retry.attempts:
            return False
        delay = self.retry.delay(attempt, retry_after)
        if time.monotonic() - started + delay > self.retry.budget_s:
            return False
        logger.warning("retrying in %.2f s (attempt %d failed)", delay, attempt)
        for listener in list(self.wait_listeners):
            listener(delay, throttled)
        self._sleep(delay)
        return True

    def _report(
        self,
        method: str,
        url: str,
        params: dict[str, str] | None,
        status: int | None,
        sent: float,
        attempt: int,
        error: str | None,
    ) -> None:
        record = RequestRecord(
            method, url, status, time.perf_counter() - sent, attempt, error, params
        )
        logger.debug(
            "%s %s -> %s in %.1f ms (attempt %d)",
            method,
            record.path,
            status if status is not None else error,
            record.duration_s * 1000,
            attempt,
        )
        for listener in list(self.listeners):
            listener(record)

    @staticmethod
    def _transport_error(exc: requests.RequestException, method: str, url: str) -> TransportError:
        """Whether the remote may have acted decides ``ambiguous``: not when the connection
        was never made, possibly when it broke or timed out after the request was sent."""
        if isinstance(exc, requests.ConnectTimeout):
            error: TransportError = RemoteTimeout("connect timeout", method=method, url=url)
            error.ambiguous = False
        elif isinstance(exc, requests.Timeout):
            error = RemoteTimeout("read timeout: no answer in time", method=method, url=url)
            error.ambiguous = error.in_flight = True
        else:
            never_connected = "NewConnectionError" in repr(exc) or "refused" in str(exc).lower()
            reason = "connection refused" if never_connected else "connection dropped"
            error = TransportError(reason, method=method, url=url)
            error.ambiguous = not never_connected
        return error

    @staticmethod
    def _http_error(response: requests.Response, method: str, url: str) -> CDMSError:
        code, message = None, f"HTTP {response.status_code} {response.reason}"
        try:
            body = response.json()
            code = body["error"].get("code") or None
            message = body["error"].get("message") or message
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        kind = error_for_status(response.status_code, code)
        kwargs: dict[str, Any] = dict(
            status=response.status_code,
            code=code,
            method=method,
            url=url,
            request_id=response.headers.get("REQ_ID")
            or response.headers.get("x-ms-service-request-id"),
        )
        if kind is Throttled:
            kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
        error = kind(message, **kwargs)
        error.ambiguous = response.status_code in AMBIGUOUS_STATUSES or response.status_code >= 500
        return error

    @staticmethod
    def json(response: requests.Response) -> dict[str, Any]:
        """The JSON object of a response, or ``MalformedResponse``."""
        try:
            body = codec.loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MalformedResponse(
                "the remote answered something that is not a JSON object",
                status=response.status_code,
                method=response.request.method,
                url=response.request.url,
            )
        return body


def read_bounded(response: requests.Response, limit: int, method: str, url: str) -> None:
    """Read a streamed answer's body (as ``response.content``), closing the connection and
    raising ``MalformedResponse`` as soon as it is longer than ``limit`` bytes (decoded)."""
    declared = response.headers.get("Content-Length", "")
    body = bytearray()
    if not (declared.isdigit() and int(declared) > limit):
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > limit:
                break
        else:
            response._content = bytes(body)
            return
    response.close()
    raise MalformedResponse(
        f"the remote answered more than {limit:,} bytes: not read",
        status=response.status_code,
        method=method,
        url=url,
    )


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date; None for anything else (``nan``
    and ``inf`` included), which leaves the wait to the retry policy."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)
