"""Typed errors for everything that can go wrong talking to the remote CRM.

Each carries what is needed to act on it -- HTTP status, the remote error code and message, the
request id, method and URL -- and never a token, secret or ``Authorization`` header."""

from __future__ import annotations

from typing import Any

#: the methods that change nothing remotely
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DUPLICATE_KEY_CODE = "0x80040237"
DUPLICATE_ALTERNATE_KEY_CODE = "0x80060892"
#: Dataverse's ChangeTrackingNotEnabledForEntity: "Entity {0} isn't enabled for change tracking."
CHANGE_TRACKING_NOT_ENABLED_CODE = "0x80072491"
#: Dataverse's ExpiredVersionStamp: "Version stamp associated with the client has expired.
#: Please perform a full sync."
EXPIRED_VERSION_STAMP_CODE = "0x80044352"


class CDMSError(Exception):
    #: True when the remote may have applied the request although it failed (a dropped
    #: connection, a read timeout, a 5xx): the outcome has to be found out, not guessed.
    ambiguous: bool = False
    #: True when the remote may still be serving the request (a read timeout: the client
    #: stopped waiting, the remote did not): it may be applied after a read that did not find
    #: it, so such a read cannot settle it, nor make sending it again safe.
    in_flight: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
        request_id: str | None = None,
    ):
        self.message, self.status, self.code = message, status, code
        self.method, self.url, self.request_id = method, url, request_id
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None or self.code:
            parts.append(
                f"(HTTP {self.status}" + (f", code {self.code}" if self.code else "") + ")"
            )
        if self.method and self.url:
            parts.append(f"on {self.method} {self.url}")
        if self.request_id:
            parts.append(f"[request id {self.request_id}]")
        return " ".join(parts)


class CDMSNotSupported(CDMSError):
    """A query or operation the remote cannot serve; the message says the way out."""


class FilterTooLong(CDMSNotSupported, ValueError):
    """A filter that cannot be split into requests short enough for the remote's URL limit
    (raised before any request is sent). Through the ORM, a condition too long for any
    request is relaxed instead, so this reaches a caller only when several long conditions
    together do not fit: shorten them, or use skip_cdms()."""


class BadRequest(CDMSError):
    """400: the remote refused the request (a query it cannot parse, a validation error)."""


class ChangeTrackingNotEnabled(BadRequest):
    """A change-tracking read (``Prefer: odata.track-changes``) of a table whose change
    tracking is off: read it by ``modifiedon`` instead (``CDMSClient.modified_pages``)."""


class ChangesExpired(BadRequest):
    """The delta link's version stamp has expired: the remote no longer keeps the changes since
    then, and only a full read (a new change-tracking read without a link) can catch up."""


class AuthError(CDMSError):
    """401/403, or the token endpoint refused the credentials."""


class NotFound(CDMSError):
    """404: no such record (or entity set)."""


class Conflict(CDMSError):
    """409 or 412: the write conflicts with the remote state."""


class DuplicateKey(Conflict):
    """A record with that key exists already."""


class DuplicateAlternateKey(DuplicateKey):
    """Another record has the same values for one of the table's alternate keys."""


class PreconditionFailed(Conflict):
    """412: the record changed since the ETag the write was based on. When a save meets it,
    both versions are on the error: ``sent``, the values the save sent, and ``current``, the
    record as the remote holds it, read after the 412 (None when it is gone)."""

    sent: dict | None = None
    current: dict | None = None


class UnknownTable(NotFound):
    """The remote's table definitions have no table with that entity set name."""


class Throttled(CDMSError):
    """429: service protection limits; ``retry_after`` is in seconds when the remote said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(CDMSError):
    """5xx from the remote."""


class TransportError(CDMSError):
    """The request got no HTTP answer: connection refused or reset, or a timeout."""


class RemoteTimeout(TransportError):
    """The connect or read timeout ran out."""


class MalformedResponse(CDMSError):
    """The remote answered something that is not the JSON expected. A write it answered
    with success (2xx) was applied whatever the body says: that error is ``ambiguous``."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        status, method = self.status, (self.method or "GET").upper()
        self.ambiguous = status is not None and 200 <= status < 300 and method not in SAFE_METHODS


class BulkWriteError(CDMSError):
    """Some writes of a bulk operation failed and the others were made. ``failed`` holds
    ``(object, error)`` for each write that failed, ``done`` the objects written. Both sides
    are in step for both: what was written is stored locally, what failed is left as it was
    (``ambiguous`` when the outcome of some could not be found out)."""

    def __init__(self, operation: str, failed: list[tuple[object, CDMSError]], done: list):
        self.failed, self.done = failed, done
        lines = "".join(f"\n  {item!r}: {error}" for item, error in failed[:MAX_LISTED])
        more = f"\n  ... and {len(failed) - MAX_LISTED} more" if len(failed) > MAX_LISTED else ""
        super().__init__(
            f"{operation}: {len(failed)} of {len(failed) + len(done)} remote writes failed "
            f"(those written are stored locally, the others left as they were):{lines}{more}"
        )
        self.ambiguous = any(error.ambiguous for _, error in failed)


#: failures a ``BulkWriteError``'s message lists (all are in ``failed``)
MAX_LISTED = 20


class RecordWithoutKey(ValueError):
    """A record given to ``update_multiple`` does not carry its table's key property."""


def error_for_status(status: int, code: str | None) -> type[CDMSError]:
    if code in BY_CODE:
        return BY_CODE[code]
    if status == 400:
        return BadRequest
    if status in (401, 403):
        return AuthError
    if status == 404:
        return NotFound
    if status in (409, 412):
        if code == DUPLICATE_ALTERNATE_KEY_CODE:
            return DuplicateAlternateKey
        return (
            DuplicateKey
            if code == DUPLICATE_KEY_CODE
            else (PreconditionFailed if status == 412 else Conflict)
        )
    if status == 429:
        return Throttled
    if status >= 500:
        return ServerError
    return CDMSError


#: Errors told apart by the remote's code, whatever the status.
BY_CODE: dict[str, type[CDMSError]] = {
    CHANGE_TRACKING_NOT_ENABLED_CODE: ChangeTrackingNotEnabled,
    EXPIRED_VERSION_STAMP_CODE: ChangesExpired,
}
