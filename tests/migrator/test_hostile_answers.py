"""A remote answering what it should not -- malformed JSON, values of the wrong type, records
missing their key, a redirect to another host, a body too large -- to reads and writes through
the ORM: a typed error (``CDMSError``), and the local database as it was."""

from __future__ import annotations

import pytest

from cdms_api.errors import CDMSError, MalformedResponse
from core.models import Organisation
from migrator import remote
from tests.seeded import NORTHWIND

# a version newer than the row's: a page writer writes it (an older one it leaves out)
GOOD = {"@odata.etag": 'W/"999999999"', "accountid": "2faef9cc-507e-519d-a449-682b0526b00d"}
ANSWERS = {
    "malformed JSON": '{"value": [{"name": "Acme',
    "not an object": [1, 2],
    "value not a list": {"value": {"name": "x"}},
    "a record without its key": {"value": [{"@odata.etag": 'W/"9"', "name": "No Key"}]},
    "a key that is no GUID": {"value": [{**GOOD, "accountid": "not-a-guid", "name": "x"}]},
    "a number as text": {"value": [{**GOOD, "name": "x", "numberofemployees": "many"}]},
    "a date that is no date": {"value": [{**GOOD, "name": "x", "new_foundedon": "yesterday"}]},
    "a decimal as a list": {"value": [{**GOOD, "name": "x", "revenue": [1]}]},
    "a record as a string": {"value": ["accountid"]},
}

#: what a write may answer instead of the record it stored
WRITE_ANSWERS = {
    "malformed JSON": '{"name": "Acme',
    "not an object": [1, 2],
    "a record without its key": {"@odata.etag": 'W/"9"', "name": "No Key"},
    "a number as text": {**GOOD, "name": "x", "numberofemployees": "many"},
    "a date that is no date": {**GOOD, "name": "x", "new_foundedon": "yesterday"},
}


def local_table() -> list[tuple]:
    return list(Organisation.objects.skip_cdms().order_by("pk").values_list())


def answer(simulator, method: str, path: str, body) -> None:
    """Every matching request answered 200 with ``body`` (text sent as it is)."""
    simulator.add_faults(
        {
            "method": method,
            "path": path,
            "status": 200,
            "times": None,
            "body": body,
            "headers": {"Content-Type": "application/json"},
        }
    )


@pytest.mark.parametrize("body", ANSWERS.values(), ids=ANSWERS.keys())
def test_a_read_answered_wrongly_is_a_typed_error_and_leaves_the_table(
    cdms_simulator, synced, body
):
    before = local_table()
    answer(cdms_simulator, "GET", "/accounts$", body)
    with pytest.raises(CDMSError):
        list(Organisation.objects.filter(name__startswith="N"))
    assert local_table() == before


@pytest.mark.parametrize("body", WRITE_ANSWERS.values(), ids=WRITE_ANSWERS.keys())
def test_a_write_answered_wrongly_is_a_typed_error_and_leaves_the_table(
    cdms_simulator, synced, body
):
    org = Organisation.objects.get(name=NORTHWIND)
    before = local_table()
    answer(cdms_simulator, "PATCH", "/accounts", body)
    org.employees = 12
    with pytest.raises(CDMSError):
        org.save()
    assert local_table() == before


def test_a_redirect_to_another_host_is_a_typed_error_and_leaves_the_table(cdms_simulator, synced):
    before = local_table()
    cdms_simulator.add_faults(
        {
            "method": "GET",
            "path": "/accounts$",
            "status": 307,
            "times": None,
            "headers": {"Location": "https://elsewhere.example/api/data/v9.2/accounts"},
        }
    )
    with pytest.raises(MalformedResponse, match=r"redirect to elsewhere\.example"):
        list(Organisation.objects.filter(name__startswith="N"))
    assert local_table() == before
    assert [e["status"] for e in cdms_simulator.journal()][-1] == 307  # once: not retried


def test_an_answer_past_the_bound_is_a_typed_error_and_leaves_the_table(cdms_simulator, synced):
    before = local_table()
    remote.client().session.max_body_bytes = 10_000  # 64 MiB in use: the test's body is small
    answer(cdms_simulator, "GET", "/accounts$", {"value": [{**GOOD, "name": "x" * 20_000}]})
    with pytest.raises(MalformedResponse, match="more than 10,000 bytes: not read"):
        list(Organisation.objects.filter(name__startswith="N"))
    assert local_table() == before


@pytest.mark.parametrize("body", WRITE_ANSWERS.values(), ids=WRITE_ANSWERS.keys())
@pytest.mark.parametrize("write", ["create", "update"])
def test_a_write_applied_but_answered_wrongly_is_found_out_by_reading_it_back(
    cdms_simulator, synced, crm, body, write
):
    """A success answered with a body that is not the record: the CRM applied the write, so
    its outcome is found out as that of an answer lost, and the save succeeds. (A create
    answered with a record that cannot be stored fails ambiguous: saved again, it succeeds.)"""
    org = Organisation(name="Answered Wrongly") if write == "create" else None
    if org is None:
        org = Organisation.objects.get(name=NORTHWIND)
        org.name = "Answered Wrongly"
    method, path = ("POST", "/accounts$") if write == "create" else ("PATCH", r"/accounts\(")
    cdms_simulator.add_faults(
        {
            "method": method,
            "path": path,
            "action": "apply_then_fail",
            "status": 201 if write == "create" else 200,
            "times": 1,
            "body": body,
            "headers": {"Content-Type": "application/json"},
        }
    )
    try:
        org.save()
    except CDMSError as error:  # a create answered with a record that cannot be stored
        assert write == "create" and error.ambiguous
        org.save()  # saved again: the record is found by its key and adopted
    [record] = crm.find("accounts", "name", "Answered Wrongly")
    assert record["accountid"] == str(org.cdms_pk)
    crm.assert_in_sync(Organisation, str(org.cdms_pk))
