"""``POST $batch``: multipart/mixed requests, atomic changesets, Content-ID references, and the
multipart responses parsed back with the standard library's ``email`` package."""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import uuid
from dataclasses import dataclass
from http import HTTPStatus

import pytest

BOUNDARY = "batch_5c0ffee0"


# Building requests ------------------------------------------------------------------------------
def operation(
    method: str,
    url: str,
    body: dict | None = None,
    content_id: str | None = None,
    headers: tuple[str, ...] = (),
) -> str:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: {content_id}")
    lines += ["", f"{method} {url} HTTP/1.1"]
    if body is not None:
        lines.append("Content-Type: application/json; type=entry")
    lines += [*headers, ""]
    lines.append(json.dumps(body, ensure_ascii=False) if body is not None else "")
    return "\r\n".join(lines)


def changeset(*operations: str, boundary: str | None = None) -> str:
    boundary = boundary or f"changeset_{uuid.uuid4().hex}"
    inner = "".join(f"--{boundary}\r\n{op}\r\n" for op in operations)
    return f"Content-Type: multipart/mixed; boundary={boundary}\r\n\r\n{inner}--{boundary}--"


def batch_body(*items: str) -> bytes:
    text = "".join(f"--{BOUNDARY}\r\n{item}\r\n" for item in items) + f"--{BOUNDARY}--\r\n"
    return text.encode("utf-8")


def post_batch(api, *items: str, prefer: str | None = None):
    headers = {"Content-Type": f'multipart/mixed; boundary="{BOUNDARY}"'}
    if prefer:
        headers["Prefer"] = prefer
    return api.post(api.base + "$batch", data=batch_body(*items), headers=headers)


# Parsing responses ------------------------------------------------------------------------------
@dataclass
class Part:
    status: int
    headers: dict[str, str]
    body: str
    content_id: str | None

    def json(self):
        return json.loads(self.body)

    @property
    def code(self) -> str:
        return self.json()["error"]["code"]


def parse_batch(response) -> list[Part | list[Part]]:
    """The operations' responses, in order; a changeset's as a list."""
    content_type = response.headers["Content-Type"]
    assert re.fullmatch(r"multipart/mixed; boundary=batchresponse_[0-9a-f-]{36}", content_type)
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + response.content
    )
    assert message.is_multipart()
    assert not message.defects, message.defects
    parts: list[Part | list[Part]] = []
    for part in message.iter_parts():
        if part.get_content_type() == "multipart/mixed":
            assert part.get_boundary().startswith("changesetresponse_")
            parts.append([http_part(inner) for inner in part.iter_parts()])
        else:
            parts.append(http_part(part))
    return parts


def http_part(part) -> Part:
    assert part.get_content_type() == "application/http"
    assert part["Content-Transfer-Encoding"] == "binary"
    payload = part.get_payload(decode=True)
    head, _, body = payload.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, reason = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    assert reason == HTTPStatus(int(status)).phrase
    headers = dict(line.split(": ", 1) for line in header_lines)
    return Part(int(status), headers, body.decode("utf-8").strip(), part.get("Content-ID"))


# Helpers over plain HTTP ------------------------------------------------------------------------
def create(api, body: dict, entity_set: str = "accounts") -> str:
    response = api.post(api.base + entity_set, json=body)
    assert response.status_code == 204, response.text
    return key_from(response.headers["OData-EntityId"])


def key_from(entity_id: str) -> str:
    return re.fullmatch(r".*\(([0-9a-f-]{36})\)", entity_id).group(1)


def names(api, name: str) -> list[dict]:
    response = api.get(
        api.base + "accounts", params={"$filter": f"name eq '{name}'", "$select": "name"}
    )
    assert response.status_code == 200
    return response.json()["value"]


def read(api, key: str, entity_set: str = "accounts") -> dict:
    response = api.get(f"{api.base}{entity_set}({key})")
    assert response.status_code == 200, response.text
    return response.json()


def count(api) -> int:
    return int(api.get(api.base + "accounts/$count").text)


# Tests ------------------------------------------------------------------------------------------
def test_a_batch_of_reads_and_a_changeset(api):
    key = create(api, {"name": "Batch target", "numberofemployees": 1})
    created_name = f"Batch created {uuid.uuid4().hex[:8]}"
    response = post_batch(
        api,
        operation("GET", f"accounts({key})?$select=name,numberofemployees"),
        changeset(
            operation("POST", "/api/data/v9.2/accounts", {"name": created_name}, "1"),
            operation("PATCH", f"accounts({key})", {"numberofemployees": 2}, "2"),
        ),
        operation("GET", f"{api.base}accounts({key})?$select=numberofemployees"),
    )
    assert response.status_code == 200
    assert response.headers["OData-Version"] == "4.0"
    first, writes, last = parse_batch(response)

    assert first.status == 200
    assert first.headers["Content-Type"] == "application/json; odata.metadata=minimal"
    assert first.content_id is None
    assert {k: v for k, v in first.json().items() if k != "@odata.etag"} == {
        "@odata.context": f"{api.base}$metadata#accounts(name,numberofemployees)/$entity",
        "name": "Batch target",
        "numberofemployees": 1,
        "accountid": key,
    }

    assert [(p.status, p.content_id, p.body) for p in writes] == [(204, "1", ""), (204, "2", "")]
    created_key = key_from(writes[0].headers["OData-EntityId"])
    assert writes[0].headers["OData-EntityId"] == f"{api.base}accounts({created_key})"
    assert writes[1].headers["OData-EntityId"] == f"{api.base}accounts({key})"

    assert last.status == 200
    assert last.json()["numberofemployees"] == 2
    assert read(api, created_key)["name"] == created_name


def test_the_batch_response_uses_crlf_line_ends(api):
    key = create(api, {"name": "Line ends"})
    response = post_batch(
        api,
        operation("GET", f"accounts({key})?$select=name"),
        changeset(operation("PATCH", f"accounts({key})", {"name": "Line ends 2"}, "1")),
    )
    assert response.status_code == 200
    assert re.search(rb"(?<!\r)\n", response.content) is None
    assert response.content.endswith(b"--\r\n")


def test_non_ascii_text_survives_a_batch(api):
    name = "Ελληνικά 東京 🚀"
    response = post_batch(
        api,
        changeset(operation("POST", "accounts", {"name": name}, "1")),
    )
    assert response.status_code == 200
    [[created]] = parse_batch(response)
    key = key_from(created.headers["OData-EntityId"])
    assert read(api, key)["name"] == name
    response = post_batch(api, operation("GET", f"accounts({key})?$select=name"))
    [part] = parse_batch(response)
    assert part.json()["name"] == name


def test_a_failing_changeset_is_rolled_back_and_answered_by_its_failing_operation(api):
    existing = create(api, {"name": "Untouched", "numberofemployees": 7})
    name = f"Rolled back {uuid.uuid4().hex[:8]}"
    missing = str(uuid.uuid4())
    before = count(api)
    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": name}, "1"),
            operation("PATCH", f"accounts({existing})", {"numberofemployees": 8}, "2"),
            operation("PATCH", f"accounts({missing})", {"name": "x"}, "3", ("If-Match: *",)),
        ),
    )
    assert response.status_code == 404
    [failed] = parse_batch(response)
    assert isinstance(failed, Part)
    assert (failed.status, failed.content_id, failed.code) == (404, "3", "0x80040217")
    assert names(api, name) == []
    assert read(api, existing)["numberofemployees"] == 7
    assert count(api) == before


def test_processing_stops_at_the_first_failure(api):
    first, third = (f"Stop {n} {uuid.uuid4().hex[:8]}" for n in (1, 3))
    response = post_batch(
        api,
        operation("POST", "accounts", {"name": first}),
        operation("POST", "accounts", {"name": "x" * 161}),
        operation("POST", "accounts", {"name": third}),
    )
    assert response.status_code == 400
    parts = parse_batch(response)
    assert [p.status for p in parts] == [204, 400]
    assert parts[1].code == "0x80044331"
    assert len(names(api, first)) == 1
    assert names(api, third) == []


def test_continue_on_error_processes_every_operation_and_answers_200(api):
    first, third, fourth = (f"Go on {n} {uuid.uuid4().hex[:8]}" for n in (1, 3, 4))
    response = post_batch(
        api,
        operation("POST", "accounts", {"name": first}),
        operation("POST", "accounts", {"name": "x" * 161}),
        changeset(
            operation("POST", "accounts", {"name": third}, "1"),
            operation("POST", "accounts", {"name": "y", "industrycode": 99}, "2"),
        ),
        changeset(operation("POST", "accounts", {"name": fourth}, "1")),
        prefer="odata.continue-on-error",
    )
    assert response.status_code == 200
    ok, too_long, failed_changeset, good_changeset = parse_batch(response)
    assert ok.status == 204
    assert (too_long.status, too_long.code) == (400, "0x80044331")
    assert (failed_changeset.status, failed_changeset.content_id) == (400, "2")
    assert failed_changeset.code == "0x8004431a"
    assert [p.status for p in good_changeset] == [204]
    assert len(names(api, first)) == 1
    assert names(api, third) == []
    assert len(names(api, fourth)) == 1


def test_content_id_references_in_urls_and_bind_values(api):
    name = f"Referenced {uuid.uuid4().hex[:8]}"
    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": "Temporary"}, "1"),
            operation(
                "POST",
                "contacts",
                {"lastname": "Referrer", "parentcustomerid_account@odata.bind": "$1"},
                "2",
            ),
            operation("PATCH", "$1", {"name": name}, "3"),
            operation(
                "POST", "accounts", {"name": "Child", "parentaccountid@odata.bind": "$1"}, "4"
            ),
        ),
    )
    assert response.status_code == 200
    [parts] = parse_batch(response)
    assert [(p.status, p.content_id) for p in parts] == [
        (204, "1"),
        (204, "2"),
        (204, "3"),
        (204, "4"),
    ]
    account = key_from(parts[0].headers["OData-EntityId"])
    assert parts[2].headers["OData-EntityId"] == parts[0].headers["OData-EntityId"]
    assert read(api, account)["name"] == name
    contact = key_from(parts[1].headers["OData-EntityId"])
    assert read(api, contact, "contacts")["_parentcustomerid_value"] == account
    child = key_from(parts[3].headers["OData-EntityId"])
    assert read(api, child)["_parentaccountid_value"] == account


def test_a_content_id_reference_to_a_created_record_with_return_representation(api):
    response = post_batch(
        api,
        changeset(
            operation(
                "POST", "accounts", {"name": "Shown"}, "1", ("Prefer: return=representation",)
            ),
            operation(
                "POST", "accounts", {"name": "Pointer", "parentaccountid@odata.bind": "$1"}, "2"
            ),
        ),
    )
    assert response.status_code == 200, response.text
    [[shown, pointer]] = parse_batch(response)
    assert shown.status == 201
    assert shown.json()["name"] == "Shown"
    assert pointer.status == 204
    child = key_from(pointer.headers["OData-EntityId"])
    assert read(api, child)["_parentaccountid_value"] == shown.json()["accountid"]


def test_a_reference_to_an_undeclared_content_id_is_400(api):
    before = count(api)
    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": "Early"}, "1"),
            operation("PATCH", "$2", {"name": "Late"}, "3"),
        ),
    )
    assert response.status_code == 400
    [part] = parse_batch(response)
    assert (part.status, part.content_id, part.code) == (400, "3", "0x80060888")
    assert part.json()["error"]["message"] == (
        "Content-ID Reference: '$2' does not exist in the batch context."
    )
    assert count(api) == before


def test_only_whole_bind_values_are_references(api):
    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": "Referenced"}, "1"),
            operation("POST", "accounts", {"name": "$1", "telephone1": "$1 $1"}, "2"),
            operation("POST", "accounts", {"name": "Bad", "parentaccountid@odata.bind": "$7"}, "3"),
        ),
        prefer="odata.continue-on-error",
    )
    assert response.status_code == 200
    [failed] = parse_batch(response)
    assert (failed.status, failed.content_id) == (400, "3")
    assert failed.json()["error"]["message"] == (
        "Content-ID Reference: '$7' does not exist in the batch context."
    )

    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": "Referenced"}, "1"),
            operation("POST", "accounts", {"name": "$1", "telephone1": "$1 $1"}, "2"),
        ),
    )
    [[_, literal]] = parse_batch(response)
    record = read(api, key_from(literal.headers["OData-EntityId"]))
    assert (record["name"], record["telephone1"]) == ("$1", "$1 $1")


def test_a_get_inside_a_changeset_is_400_and_nothing_is_applied(api):
    name = f"Not applied {uuid.uuid4().hex[:8]}"
    response = post_batch(
        api,
        changeset(
            operation("POST", "accounts", {"name": name}, "1"),
            operation("GET", "accounts?$top=1", None, "2"),
        ),
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"
    assert names(api, name) == []


def test_at_most_1000_operations(api):
    before = count(api)
    too_many = [operation("POST", "accounts", {"name": f"Bulk {i}"}) for i in range(1001)]
    response = post_batch(api, *too_many)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80060888",
        "message": "The number of requests in the batch (1001) exceeds the limit of 1000.",
    }
    assert count(api) == before

    in_changesets = [
        changeset(*(operation("POST", "accounts", {"name": f"Bulk {i}-{j}"}) for j in range(10)))
        for i in range(100)
    ]
    response = post_batch(api, *in_changesets)
    assert response.status_code == 200
    parts = parse_batch(response)
    assert len(parts) == 100
    assert {p.status for changeset_parts in parts for p in changeset_parts} == {204}
    assert count(api) == before + 1000


@pytest.mark.parametrize(
    "content_type, data",
    [
        ("application/json", b"{}"),
        ("multipart/mixed", b"--x\r\n\r\n--x--"),
        (f"multipart/mixed; boundary={BOUNDARY}", b"garbage"),
    ],
    ids=["json", "no-boundary", "no-parts"],
)
def test_a_batch_that_is_not_multipart_is_400(api, content_type, data):
    response = api.post(api.base + "$batch", data=data, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"


def test_a_part_that_is_not_an_http_request_is_400(api):
    part = "Content-Type: text/plain\r\n\r\nhello"
    assert post_batch(api, part).status_code == 400
    bad_line = "Content-Type: application/http\r\n\r\nPOST accounts\r\n\r\n{}"
    assert post_batch(api, bad_line).status_code == 400


def test_get_on_batch_is_405(api):
    assert api.get(api.base + "$batch").status_code == 405


def test_a_batch_needs_a_token(api, cdms_simulator):
    response = api.post(
        api.base + "$batch",
        data=batch_body(operation("GET", "accounts?$top=1")),
        headers={
            "Content-Type": f"multipart/mixed; boundary={BOUNDARY}",
            "Authorization": "Bearer nope",
        },
    )
    assert response.status_code == 401
