"""Table definitions read once, bulk creates and updates, WhoAmI and polymorphic lookups,
through the client against the simulator over HTTP."""

from __future__ import annotations

import uuid

import pytest

from cdms_api import errors
from cdms_api.keys import LookupValue, bind, lookup_value
from cdms_api.odata import Prop
from tests.seeded import ACME_KEY


def calls(client, method=None, path_part: str = ""):
    return [r for r in client.sent if (method is None or r.method == method) and path_part in r.url]


def test_keys_come_from_the_table_definitions_read_once(client):
    assert client.key_of("emails") == "activityid"
    assert client.key_of("customeraddresses") == "customeraddressid"
    assert client.key_of("emails") == "activityid"
    assert len(calls(client, "GET", "EntityDefinitions")) == 2
    email = client.create("emails", {"subject": "Hello"})
    assert client.get("emails", email["activityid"])["subject"] == "Hello"


def test_explicit_keys_need_no_definitions(make_client):
    client = make_client(keys={"accounts": "accountid"})
    client.create("accounts", {"name": "No definitions read"})
    assert calls(client, "GET", "EntityDefinitions") == []


def test_table_types_option_sets_and_lookup_targets(client):
    accounts = client.table("accounts")
    assert (accounts.logical_name, accounts.key, accounts.primary_name) == (
        "account",
        "accountid",
        "name",
    )
    assert accounts.attributes["industrycode"].type == "Picklist"
    assert accounts.attributes["industrycode"].options[7] == "Consulting"
    assert accounts.attributes["parentaccountid"].targets == ["account"]
    contacts = client.table("contacts")
    customer = contacts.attributes["parentcustomerid"]
    assert (customer.type, customer.targets) == ("Customer", ["account", "contact"])
    before = len(client.sent)
    client.table("contacts")
    assert len(client.sent) == before
    assert len(calls(client, "GET", "EntityDefinitions")) == 8


def test_an_unknown_table_is_a_typed_error(client):
    with pytest.raises(errors.UnknownTable) as caught:
        client.key_of("nosuchthings")
    assert isinstance(caught.value, errors.NotFound)


def test_create_multiple_sends_one_request_per_thousand_records(client):
    prefix = f"Bulk {uuid.uuid4().hex[:6]}"
    keys = client.create_multiple("accounts", ({"name": f"{prefix} {i:04d}"} for i in range(2500)))
    assert len(calls(client, "POST", "CreateMultiple")) == 3
    assert len(set(keys)) == 2500
    assert client.count("accounts", Prop("name").startswith(prefix)) == 2500
    assert client.get("accounts", keys[1234])["name"] == f"{prefix} 1234"


def test_create_multiple_is_all_or_nothing(client):
    prefix = f"Atomic {uuid.uuid4().hex[:6]}"
    with pytest.raises(errors.BadRequest):
        client.create_multiple("accounts", [{"name": f"{prefix} ok"}, {"name": "x" * 161}])
    assert client.count("accounts", Prop("name").startswith(prefix)) == 0


@pytest.mark.parametrize("fault", [{"status": None}, {"status": 504}], ids=["dropped", "504"])
def test_a_create_multiple_whose_answer_is_lost_happens_exactly_once(cdms_simulator, client, fault):
    prefix = f"Lost {uuid.uuid4().hex[:6]}"
    client.key_of("accounts")
    cdms_simulator.add_faults(
        {"method": "POST", "path": "CreateMultiple$", "action": "apply_then_fail", **fault}
    )
    keys = client.create_multiple("accounts", [{"name": f"{prefix} {i}"} for i in range(3)])
    assert len(keys) == 3
    assert client.count("accounts", Prop("name").startswith(prefix)) == 3
    assert len(calls(client, "POST", "CreateMultiple")) == 1


def test_update_multiple(client):
    prefix = f"Upd {uuid.uuid4().hex[:6]}"
    keys = client.create_multiple("accounts", [{"name": f"{prefix} {i}"} for i in range(3)])
    client.update_multiple(
        "accounts", [{"accountid": k, "numberofemployees": i} for i, k in enumerate(keys)]
    )
    assert [client.get("accounts", k)["numberofemployees"] for k in keys] == [0, 1, 2]
    assert len(calls(client, "POST", "UpdateMultiple")) == 1
    with pytest.raises(errors.RecordWithoutKey):
        client.update_multiple("accounts", [{"name": "no key"}])
    with pytest.raises(errors.NotFound):
        client.update_multiple("accounts", [{"accountid": str(uuid.uuid4()), "name": "x"}])


def test_whoami(client):
    me = client.whoami()
    assert uuid.UUID(me["UserId"]) and uuid.UUID(me["BusinessUnitId"])


def test_polymorphic_lookups_are_read_with_their_logical_name(client):
    person = client.create("contacts", {"lastname": "Parent"})
    child = client.create(
        "contacts",
        {
            "lastname": "Child",
            "parentcustomerid_contact@odata.bind": bind("contacts", person["contactid"]),
        },
    )
    record = client.get("contacts", child["contactid"])
    assert lookup_value(record, "_parentcustomerid_value") == LookupValue(
        person["contactid"], "contact"
    )
    employee = client.create(
        "contacts",
        {"lastname": "Employee", "parentcustomerid_account@odata.bind": bind("accounts", ACME_KEY)},
    )
    (read,) = client.iter("contacts", filter=Prop("contactid").eq(uuid.UUID(employee["contactid"])))
    assert lookup_value(read, "_parentcustomerid_value") == LookupValue(ACME_KEY, "account")
    assert lookup_value(read, "_nothing_value") is None


def test_a_duplicate_alternate_key_is_a_typed_error(client):
    number = f"N-{uuid.uuid4().hex[:8]}"
    client.create("accounts", {"name": "First", "accountnumber": number})
    with pytest.raises(errors.DuplicateAlternateKey) as caught:
        client.create("accounts", {"name": "Second", "accountnumber": number})
    assert isinstance(caught.value, errors.DuplicateKey)
    assert caught.value.code == "0x80060892"
