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


def test_which_bulk_messages_a_table_takes_is_read_once(client):
    assert client.bulk_messages("accounts") == {
        "CreateMultiple",
        "UpdateMultiple",
        "UpsertMultiple",
    }
    assert client.bulk_messages("customeraddresses") == frozenset()  # as Dataverse's table
    assert client.bulk_messages("accounts") == client.bulk_messages("accounts")
    assert len(calls(client, "GET", "sdkmessagefilters")) == 2
    (read,) = calls(client, "GET", "sdkmessagefilters")[:1]
    assert "primaryobjecttypecode eq 'account'" in read.params["$filter"]


def test_records_by_key_are_one_plain_read_when_the_url_fits(client):
    keys = client.create_multiple("accounts", [{"name": f"By key {i}"} for i in range(3)])
    before = len(client.sent)
    found = client.records("accounts", [*keys, str(uuid.uuid4())], select=["name"])
    assert sorted(r["name"] for r in found) == ["By key 0", "By key 1", "By key 2"]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in client.sent[before:]] == [
        ("GET", "accounts")
    ]
    assert client.records("accounts", []) == []


def test_records_by_key_too_many_for_a_url_are_one_batch(client):
    """1,200 keys make a URL longer than 32 KB: read in one $batch, whose inner URLs may be
    64 KB long, as Microsoft's batch documentation says."""
    keys = client.create_multiple("accounts", [{"name": f"Many {i:04d}"} for i in range(1200)])
    before = len(client.sent)
    found = client.records("accounts", [*keys, str(uuid.uuid4())], select=["name"])
    assert len(found) == 1200 and {r["accountid"] for r in found} == set(keys)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in client.sent[before:]] == [
        ("POST", "$batch")
    ]


def test_a_batch_of_reads_is_sent_again_after_a_dropped_connection(cdms_simulator, client):
    keys = client.create_multiple("accounts", [{"name": f"Again {i:04d}"} for i in range(1200)])
    cdms_simulator.add_faults({"method": "POST", "path": r"\$batch$", "action": "drop", "times": 1})
    assert len(client.records("accounts", keys)) == 1200
    assert len(calls(client, "POST", "$batch")) == 2


def test_batch_writes_answer_lookups_with_their_logical_name(client):
    with client.batch() as batch:
        created = batch.create(
            "contacts",
            {
                "lastname": "Batched",
                "parentcustomerid_account@odata.bind": bind("accounts", ACME_KEY),
            },
        )
    assert lookup_value(created.record, "_parentcustomerid_value") == LookupValue(
        ACME_KEY, "account"
    )


def test_a_failed_changeset_names_the_operation_that_failed(client):
    with client.batch() as batch, batch.changeset():
        fine = batch.create("accounts", {"name": "Fine"})
        broken = batch.update("accounts", str(uuid.uuid4()), {"name": "Missing"})
        after = batch.create("accounts", {"name": "After"})
    assert [op.cause for op in (fine, broken, after)] == [False, True, False]
    assert all(isinstance(op.error, errors.NotFound) for op in (fine, broken, after))
