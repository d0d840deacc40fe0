"""``POST $batch``: multipart/mixed requests, atomic changesets, multipart responses.

Processing stops at the first failed operation unless ``Prefer: odata.continue-on-error``; the
batch then answers with that operation's status, as Dataverse does. A failed changeset is rolled
back whole and answered by its failing operation alone.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from .. import codec
from .errors import DataverseError, bad_query
from .options import Preferences
from .responses import RECORDS, error_response

if TYPE_CHECKING:
    from .app import Simulator

MAX_OPERATIONS = 1000
WHOLE_REFERENCE = re.compile(r"\$(\d+)\Z")
CONTEXT_SET = re.compile(r"\$metadata#([A-Za-z_][A-Za-z0-9_]*)")


@dataclass
class Operation:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    content_id: str | None = None


@dataclass
class Changeset:
    operations: list[Operation] = field(default_factory=list)


class ChangesetFailed(Exception):
    def __init__(self, response: Response, content_id: str | None):
        self.response, self.content_id = response, content_id


def parse(content_type: str, body: bytes) -> list[Operation | Changeset]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise bad_query("The $batch body must be multipart/mixed with a boundary.")
    items: list[Operation | Changeset] = []
    for part in message.iter_parts():
        if part.get_content_type() == "multipart/mixed":
            changeset = Changeset([_operation(inner) for inner in part.iter_parts()])
            if any(op.method == "GET" for op in changeset.operations):
                raise bad_query("GET requests are not allowed inside a changeset.")
            items.append(changeset)
        else:
            items.append(_operation(part))
    count = sum(len(i.operations) if isinstance(i, Changeset) else 1 for i in items)
    if count > MAX_OPERATIONS:
        raise bad_query(
            f"The number of requests in the batch ({count}) exceeds the limit of {MAX_OPERATIONS}."
        )
    return items


def _operation(part) -> Operation:
    if part.get_content_type() != "application/http":
        raise bad_query("Each $batch part must have Content-Type application/http.")
    payload = part.get_payload(decode=True) or b""
    head, _, body = payload.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.decode("utf-8").split("\n")
    request_line = lines[0].split()
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        raise bad_query(f"The $batch part request line '{lines[0]}' is not valid.")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return Operation(
        request_line[0].upper(), request_line[1], headers, body.strip(), part.get("Content-ID")
    )


def handle(simulator: Simulator, request: Request) -> Response:
    items = parse(request.headers.get("Content-Type", ""), request.get_data())
    prefs = Preferences.parse(request.headers.get("Prefer"))
    boundary = f"batchresponse_{uuid.uuid4()}"
    parts, status = [], 200
    for item in items:
        if isinstance(item, Changeset):
            part, failed = _run_changeset(simulator, request, item)
        else:
            response = _execute(simulator, request, item, {})
            part, failed = (
                _http_part(response, None),
                response if response.status_code >= 400 else None,
            )
        parts.append(part)
        if failed is not None and not prefs.continue_on_error:
            status = failed.status_code
            break
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts) + f"--{boundary}--\r\n"
    return Response(
        body.encode("utf-8"),
        status,
        content_type=f"multipart/mixed; boundary={boundary}",
        headers={"OData-Version": "4.0"},
    )


def _run_changeset(
    simulator: Simulator, request: Request, changeset: Changeset
) -> tuple[str, Response | None]:
    references: dict[str, str] = {}
    responses: list[tuple[Response, str | None]] = []
    try:
        with simulator.store.transaction():
            for operation in changeset.operations:
                response = _execute(simulator, request, operation, references)
                if response.status_code >= 400:
                    raise ChangesetFailed(response, operation.content_id)
                if operation.content_id:
                    address = _address(simulator, request, response)
                    if address:
                        references[operation.content_id] = address
                responses.append((response, operation.content_id))
    except ChangesetFailed as failure:
        return _http_part(failure.response, failure.content_id), failure.response
    boundary = f"changesetresponse_{uuid.uuid4()}"
    inner = "".join(f"--{boundary}\r\n{_http_part(r, cid)}\r\n" for r, cid in responses)
    return (
        f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}--{boundary}--"
    ), None


def _address(simulator: Simulator, request: Request, response: Response) -> str | None:
    """The URL of the record a changeset operation wrote, for ``$n`` references: its
    ``OData-EntityId``, or with ``return=representation`` the key of the record returned."""
    if "OData-EntityId" in response.headers:
        return response.headers["OData-EntityId"]
    if response.status_code not in (200, 201):
        return None
    body = codec.loads(response.get_data(as_text=True))
    match = CONTEXT_SET.search(body.get("@odata.context", ""))
    entity_set = simulator.schema.entity_sets.get(match.group(1)) if match else None
    if entity_set is None or entity_set.key not in body:
        return None
    return f"{simulator.base_url(request)}{entity_set.name}({body[entity_set.key]})"


def _unknown_reference(reference: str) -> DataverseError:
    return DataverseError(
        400,
        "0x80060888",
        f"Content-ID Reference: '{reference}' does not exist in the batch context.",
    )


def _resolve_body(body: bytes, references: dict[str, str]) -> bytes:
    """Replace ``$n`` in the body's ``@odata.bind`` and ``@odata.id`` values."""
    if b"$" not in body:
        return body
    try:
        document = codec.loads(body)
    except ValueError:
        return body  # the operation itself answers that its body is not JSON
    if not isinstance(document, dict):
        return body
    changed = False
    for name, value in document.items():
        if not (name.endswith("@odata.bind") or name == "@odata.id"):
            continue
        if isinstance(value, str) and (match := WHOLE_REFERENCE.match(value)):
            if match.group(1) not in references:
                raise _unknown_reference(value)
            document[name] = references[match.group(1)]
            changed = True
    if not changed:
        return body
    return codec.dumps(document)


def _execute(
    simulator: Simulator, batch_request: Request, operation: Operation, references: dict[str, str]
) -> Response:
    target = operation.target
    if match := WHOLE_REFERENCE.match(target.split("?")[0].split("/")[0]):
        if match.group(1) not in references:
            return error_response(_unknown_reference(match.group(0)))
        target = references[match.group(1)] + target[len(match.group(0)) :]
    url = urlsplit(target)
    path = url.path if url.path.startswith("/") else "/api/data/v9.2/" + url.path
    try:
        body = _resolve_body(operation.body, references)
    except DataverseError as error:
        return error_response(error)
    headers = [h for h in operation.headers if h[0].lower() != "authorization"]
    environ = EnvironBuilder(
        path=path,
        query_string=url.query,
        method=operation.method,
        headers=headers,
        data=body,
        base_url=batch_request.host_url,
    ).get_environ()
    environ["REMOTE_ADDR"] = batch_request.remote_addr
    response = simulator.dispatch(Request(environ))
    if environ.get(RECORDS) is not None:  # the batch's journal entry counts its reads' records
        batch_request.environ[RECORDS] = batch_request.environ.get(RECORDS, 0) + environ[RECORDS]
    return response


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _http_part(response: Response, content_id: str | None) -> str:
    head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    if content_id:
        head += f"Content-ID: {content_id}\r\n"
    lines = [f"HTTP/1.1 {response.status_code} {_reason(response.status_code)}"]
    lines += [
        f"{name}: {value}"
        for name, value in response.headers.items()
        if name.lower() != "content-length"
    ]
    return f"{head}\r\n" + "\r\n".join(lines) + "\r\n\r\n" + response.get_data(as_text=True)
