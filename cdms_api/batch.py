"""``$batch``: many operations in few requests, with atomic changesets.

Operations are collected, then sent when the ``with`` block ends, as ``$batch`` requests of at
most 1,000 operations each (a changeset is never split across two), with
``Prefer: odata.continue-on-error`` so that every operation reports its own outcome."""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from .codec import dumps, loads
from .errors import CDMSError, FilterTooLong, MalformedResponse, error_for_status
from .keys import LOOKUP_NAMES, RETURN_RECORD, entity_path, new_key

if TYPE_CHECKING:
    from .client import CDMSClient

MAX_OPERATIONS = 1000
#: Dataverse takes URLs up to 64 KB inside a ``$batch`` body (32 KB on a request of its own).
MAX_INNER_URL_LENGTH = 64_000
#: characters a read's URL keeps as they are inside a batch (spaces and quotes are encoded)
INNER_URL_SAFE = "$(),/:@="


@dataclass
class Operation:
    """One operation of a batch and, once sent, its outcome: ``status``, ``record`` (the
    JSON answer, if any) and ``error`` (a ``CDMSError`` when it failed). In a changeset that
    failed, every operation has the error (none was applied) and ``cause`` marks the one the
    remote named as failing."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key: str | None = None
    status: int | None = None
    record: dict[str, Any] | None = None
    error: CDMSError | None = None
    cause: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status < 400


class Batch:
    def __init__(self, client: CDMSClient):
        self.client = client
        self.items: list[Operation | Changeset] = []
        self._open: Changeset | None = None
        self.requests = 0

    @property
    def operations(self) -> list[Operation]:
        return [op for item in self.items for op in _operations(item)]

    # collecting --------------------------------------------------------------------------
    def _add(self, operation: Operation) -> Operation:
        if self._open is not None:
            if len(self._open) >= MAX_OPERATIONS:
                raise ValueError(f"a changeset holds at most {MAX_OPERATIONS} operations")
            self._open.append(operation)
        else:
            self.items.append(operation)
        return operation

    @contextmanager
    def changeset(self) -> Iterator[Batch]:
        """Operations added inside are applied all together or not at all."""
        if self._open is not None:
            raise ValueError("changesets do not nest")
        self._open = Changeset()
        try:
            yield self
        finally:
            if self._open:
                self.items.append(self._open)
            self._open = None

    def _read(self, operation: Operation) -> Operation:
        if self._open is not None:
            raise ValueError("a changeset cannot hold reads")
        return self._add(operation)

    def get(self, entity_set: str, key: str, select: list[str] | None = None) -> Operation:
        query = f"?$select={','.join(select)}" if select else ""
        return self._read(Operation("GET", f"{entity_path(entity_set, key)}{query}"))

    def query(self, entity_set: str, params: Mapping[str, str], page_size: int | None) -> Operation:
        """A collection read (its first page, of up to ``page_size`` records: ``record`` is
        the answer, ``{"value": [...]}``; no page size for a read whose ``$top`` it ignores).
        Its URL may be up to 64 KB long, twice what a request of its own may be: the way to
        read many records by key in one request."""
        path = f"{entity_set}?{urlencode(params, safe=INNER_URL_SAFE, quote_via=quote)}"
        if len(path) > MAX_INNER_URL_LENGTH:
            raise FilterTooLong(
                f"a read's URL inside a batch is at most {MAX_INNER_URL_LENGTH} long"
            )
        prefer = f"odata.maxpagesize={page_size},{LOOKUP_NAMES}" if page_size else LOOKUP_NAMES
        return self._read(Operation("GET", path, headers={"Prefer": prefer}))

    def create(self, entity_set: str, data: Mapping[str, Any], key: str | None = None) -> Operation:
        key = str(key or new_key())
        body = {**data, self.client.key_of(entity_set): key}
        return self._add(Operation("POST", entity_set, body, _REPRESENT, key))

    def update(
        self, entity_set: str, key: str, data: Mapping[str, Any], etag: str | None = None
    ) -> Operation:
        headers = {**_REPRESENT, "If-Match": etag or "*"}
        return self._add(Operation("PATCH", entity_path(entity_set, key), dict(data), headers, key))

    def upsert(self, entity_set: str, key: str, data: Mapping[str, Any]) -> Operation:
        return self._add(
            Operation("PATCH", entity_path(entity_set, key), dict(data), _REPRESENT, key)
        )

    def delete(self, entity_set: str, key: str, etag: str | None = None) -> Operation:
        headers = {"If-Match": etag} if etag else {}
        return self._add(Operation("DELETE", entity_path(entity_set, key), None, headers, key))

    # sending -----------------------------------------------------------------------------
    def send(self) -> list[Operation]:
        """Send what was collected; every operation then has its outcome."""
        chunk: list[Operation | Changeset] = []
        size = 0
        for item in self.items:
            count = len(_operations(item))
            if size + count > MAX_OPERATIONS:
                self._send(chunk)
                chunk, size = [], 0
            chunk.append(item)
            size += count
        if chunk:
            self._send(chunk)
        return self.operations

    def _send(self, items: list[Operation | Changeset]) -> None:
        boundary = f"batch_{uuid.uuid4()}"
        prefix = urlsplit(self.client.session.base_url).path
        body = []
        for item in items:
            body.append(f"--{boundary}\r\n")
            if isinstance(item, Changeset):
                inner = f"changeset_{uuid.uuid4()}"
                body.append(f"Content-Type: multipart/mixed; boundary={inner}\r\n\r\n")
                for number, operation in enumerate(item, 1):
                    body.append(f"--{inner}\r\n{_request_part(operation, prefix, number)}")
                body.append(f"--{inner}--\r\n")
            else:
                body.append(_request_part(item, prefix, None))
        body.append(f"--{boundary}--\r\n")
        response = self.client.session.request(
            "POST",
            "$batch",
            data="".join(body).encode("utf-8"),
            # a batch of reads only may be sent again whatever happened to it
            idempotent=all(op.method == "GET" for item in items for op in _operations(item)),
            headers={
                "Content-Type": f"multipart/mixed; boundary={boundary}",
                "Prefer": "odata.continue-on-error",
            },
        )
        self.requests += 1
        _read_response(
            response.headers.get("Content-Type", ""), response.content, items, response.url
        )


class Changeset(list):
    """Operations applied all together or not at all."""


def _operations(item: Operation | Changeset) -> list[Operation]:
    return list(item) if isinstance(item, Changeset) else [item]


_REPRESENT = {"Prefer": RETURN_RECORD}


def _request_part(operation: Operation, prefix: str, content_id: int | None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id is not None:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"{operation.method} {prefix}{operation.path} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in operation.headers.items()]
    payload = ""
    if operation.body is not None:
        lines.append("Content-Type: application/json; type=entry")
        payload = dumps(operation.body).decode("utf-8")
    return head + "\r\n" + "\r\n".join(lines) + "\r\n\r\n" + payload + "\r\n"


def _read_response(
    content_type: str, content: bytes, items: list[Operation | Changeset], url: str
) -> None:
    """Give each operation its outcome. A failed changeset is answered by one part: every
    operation of it takes that failure, since none of them was applied."""
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + content
    )
    if not message.is_multipart():
        raise MalformedResponse("a $batch answer that is not multipart", method="POST", url=url)
    parts = list(message.iter_parts())
    if len(parts) != len(items):
        raise MalformedResponse(
            f"a $batch answer with {len(parts)} parts for {len(items)} requests",
            method="POST",
            url=url,
        )
    for item, part in zip(items, parts, strict=True):
        operations = _operations(item)
        if part.get_content_type() == "multipart/mixed":
            answers = [_status_and_body(p) for p in part.iter_parts()]
            if len(answers) != len(operations):
                raise MalformedResponse(
                    "a changeset answer with the wrong number of parts", method="POST", url=url
                )
            for operation, answer in zip(operations, answers, strict=True):
                _settle(operation, *answer, url)
            continue
        status, body = _status_and_body(part)
        if status < 400 and len(operations) > 1:
            raise MalformedResponse(
                "a changeset answered by a single success", method="POST", url=url
            )
        for operation in operations:
            _settle(operation, status, body, url)
        cause = _content_id(part)
        if isinstance(item, Changeset) and cause is not None and 0 < cause <= len(operations):
            operations[cause - 1].cause = True


def _content_id(part) -> int | None:
    """The ``Content-ID`` of an answer's part: in a failed changeset, the failing operation."""
    try:
        return int(str(part.get("Content-ID", "")).strip())
    except ValueError:
        return None


def _status_and_body(part) -> tuple[int, dict | None]:
    payload = part.get_payload(decode=True) or b""
    head, _, body = payload.replace(b"\r\n", b"\n").partition(b"\n\n")
    status_line = head.split(b"\n", 1)[0].decode("latin-1").split()
    try:
        status = int(status_line[1])
    except (IndexError, ValueError):
        raise MalformedResponse(f"a $batch part with the status line {status_line!r}") from None
    body = body.strip()
    try:
        return status, loads(body) if body else None
    except ValueError:
        raise MalformedResponse("a $batch part whose body is not JSON") from None


def _settle(operation: Operation, status: int, body: dict | None, url: str) -> None:
    operation.status = status
    if status < 400:
        operation.record = body
        return
    error = (body or {}).get("error") or {}
    code = error.get("code") or None
    operation.error = error_for_status(status, code)(
        error.get("message") or f"HTTP {status}",
        status=status,
        code=code,
        method=operation.method,
        url=url,
    )
