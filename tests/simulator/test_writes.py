"""Creates, updates, upserts and deletes over HTTP, answered as Dataverse answers them."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid

import pytest

from tests.seeded import ACCOUNT_PROPERTIES

SYSTEM_FIELDS = {"@odata.etag", "versionnumber", "createdon", "modifiedon"}


def key_of(api, response, entity_set: str = "accounts") -> str:
    entity_id = response.headers["OData-EntityId"]
    match = re.fullmatch(re.escape(f"{api.base}{entity_set}(") + r"([0-9a-f-]{36})\)", entity_id)
    assert match, entity_id
    return match.group(1)


def create(api, body: dict, entity_set: str = "accounts") -> str:
    response = api.post(api.base + entity_set, json=body)
    assert response.status_code == 204, response.text
    return key_of(api, response, entity_set)


def read(api, key: str, entity_set: str = "accounts", **params) -> dict:
    response = api.get(f"{api.base}{entity_set}({key})", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def count(api, entity_set: str = "accounts") -> int:
    response = api.get(f"{api.base}{entity_set}/$count")
    assert response.status_code == 200, response.text
    return int(response.text)


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:12]}"


def next_second() -> None:
    """``modifiedon`` has whole-second precision: wait until the clock ticks over."""
    time.sleep(1.02 - time.time() % 1)


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


# Escaping ---------------------------------------------------------------------------------------
AWKWARD_NAMES = [
    "O'Brien & Sons",
    "100%",
    "a/b#c",
    "(x)",
    "a+b?c=d",
    "it''s",
    "東京",
    "Ελληνικά",
    "Rocket 🚀 Lab 👩‍🚀",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_names_round_trip_through_create_filter_and_read(api, name):
    key = create(api, {"name": name})
    literal = name.replace("'", "''")
    response = api.get(
        api.base + "accounts", params={"$filter": f"name eq '{literal}'", "$select": "name"}
    )
    assert response.status_code == 200, response.text
    assert "%27" in response.url  # requests percent-encoded the quotes, the server decoded them
    rows = response.json()["value"]
    assert key in [row["accountid"] for row in rows]
    assert {row["name"] for row in rows} == {name}
    assert read(api, key, **{"$select": "name"})["name"] == name


def test_awkward_names_in_a_patch_body_round_trip(api):
    key = create(api, {"name": "plain"})
    name = 'Zoë "quoted" \\ back\\slash\ttab\nnewline 東京 🚀'
    assert api.patch(f"{api.base}accounts({key})", json={"name": name}).status_code == 204
    assert read(api, key)["name"] == name


# Create -----------------------------------------------------------------------------------------
def test_create_answers_204_with_the_entity_id_and_no_body(api):
    response = api.post(api.base + "accounts", json={"name": unique("Create")})
    assert response.status_code == 204
    assert response.content == b""
    key = key_of(api, response)
    assert str(uuid.UUID(key)) == key
    assert response.headers["OData-Version"] == "4.0"
    record = read(api, key)
    assert set(record) == (ACCOUNT_PROPERTIES | {"@odata.etag"}) | {"@odata.context"}
    assert record["accountid"] == key


def test_create_honours_a_client_supplied_key(api):
    key = str(uuid.uuid4())
    response = api.post(
        api.base + "accounts", json={"accountid": key.upper(), "name": "Chosen key"}
    )
    assert response.status_code == 204
    assert key_of(api, response) == key
    assert read(api, key)["name"] == "Chosen key"


@pytest.mark.parametrize("key", ["not-a-guid", 42, ["x"]])
def test_create_with_a_malformed_key_in_the_body_is_400(api, key):
    before = count(api)
    response = api.post(api.base + "accounts", json={"accountid": key, "name": "Bad key"})
    assert error(response) == (400, "0x80048d19")
    assert count(api) == before


def test_create_with_an_existing_key_is_412_duplicate(api):
    key = create(api, {"accountid": str(uuid.uuid4()), "name": "First"})
    before = count(api)
    response = api.post(api.base + "accounts", json={"accountid": key, "name": "Second"})
    assert error(response) == (412, "0x80040237")
    assert (
        response.json()["error"]["message"] == "A record with matching key values already exists."
    )
    assert read(api, key)["name"] == "First"
    assert count(api) == before


def test_create_with_return_representation_and_select(api):
    response = api.post(
        api.base + "accounts",
        params={"$select": "name,numberofemployees"},
        json={"name": "Represented", "numberofemployees": 5, "telephone1": "+44 1"},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "return=representation"
    body = response.json()
    key = body["accountid"]
    assert body == {
        "@odata.context": f"{api.base}$metadata#accounts(name,numberofemployees)/$entity",
        "@odata.etag": response.headers["ETag"],
        "name": "Represented",
        "numberofemployees": 5,
        "accountid": key,
    }
    assert re.fullmatch(r'W/"\d+"', body["@odata.etag"])
    assert read(api, key)["telephone1"] == "+44 1"


def test_create_with_return_representation_returns_every_property(api):
    response = api.post(
        api.base + "accounts",
        json={"name": "Everything", "revenue": 12.5, "new_ukbased": True},
        headers={"Prefer": "return=representation"},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == (ACCOUNT_PROPERTIES | {"@odata.etag"}) | {"@odata.context"}
    assert body["@odata.context"] == f"{api.base}$metadata#accounts/$entity"
    assert body["name"] == "Everything"
    assert body["revenue"] == 12.5
    assert body["new_ukbased"] is True
    assert body["websiteurl"] is None
    assert body["createdon"] == body["modifiedon"]
    assert body["@odata.etag"] == f'W/"{body["versionnumber"]}"'


def test_read_only_properties_in_a_body_are_ignored(api):
    key = create(api, {"name": "Stamped", "createdon": "2001-01-01T00:00:00Z", "versionnumber": 7})
    record = read(api, key)
    assert record["createdon"] != "2001-01-01T00:00:00Z"
    assert record["versionnumber"] != 7


# Update -----------------------------------------------------------------------------------------
def test_patch_updates_only_the_given_fields_and_moves_etag_and_modifiedon(api):
    key = create(api, {"name": "Before", "numberofemployees": 10})
    before = read(api, key)
    next_second()
    response = api.patch(f"{api.base}accounts({key})", json={"name": "After"})
    assert response.status_code == 204
    assert response.content == b""
    assert key_of(api, response) == key
    after = read(api, key)
    assert after["name"] == "After"
    assert after["numberofemployees"] == 10
    assert after["@odata.etag"] != before["@odata.etag"]
    assert after["versionnumber"] > before["versionnumber"]
    assert moment(after["modifiedon"]) > moment(before["modifiedon"])
    assert after["createdon"] == before["createdon"]


def test_every_write_changes_the_etag(api):
    key = create(api, {"name": "Same"})
    etags = {read(api, key)["@odata.etag"]}
    for _ in range(3):
        assert api.patch(f"{api.base}accounts({key})", json={"name": "Same"}).status_code == 204
        etags.add(read(api, key)["@odata.etag"])
    assert len(etags) == 4


def test_patch_with_the_current_etag_succeeds_and_with_a_stale_one_is_412(api):
    key = create(api, {"name": "v1"})
    etag = read(api, key)["@odata.etag"]
    url = f"{api.base}accounts({key})"
    assert api.patch(url, json={"name": "v2"}, headers={"If-Match": etag}).status_code == 204
    stale = api.patch(url, json={"name": "v3"}, headers={"If-Match": etag})
    assert error(stale) == (412, "0x80060882")
    assert read(api, key)["name"] == "v2"


def test_delete_with_a_stale_etag_is_412_and_keeps_the_record(api):
    key = create(api, {"name": "Keep"})
    etag = read(api, key)["@odata.etag"]
    url = f"{api.base}accounts({key})"
    api.patch(url, json={"name": "Kept"})
    assert error(api.delete(url, headers={"If-Match": etag})) == (412, "0x80060882")
    current = read(api, key)["@odata.etag"]
    assert api.delete(url, headers={"If-Match": current}).status_code == 204
    assert api.get(url).status_code == 404


def test_if_match_star_updates_an_existing_record_only(api):
    key = create(api, {"name": "Old"})
    url = f"{api.base}accounts({key})"
    assert api.patch(url, json={"name": "New"}, headers={"If-Match": "*"}).status_code == 204
    assert read(api, key)["name"] == "New"

    missing = str(uuid.uuid4())
    response = api.patch(
        f"{api.base}accounts({missing})", json={"name": "Ghost"}, headers={"If-Match": "*"}
    )
    assert error(response) == (404, "0x80040217")
    assert response.json()["error"]["message"] == f"account With Id = {missing} Does Not Exist"
    assert api.get(f"{api.base}accounts({missing})").status_code == 404


def test_if_none_match_star_creates_a_missing_record_only(api):
    key = str(uuid.uuid4())
    url = f"{api.base}accounts({key})"
    response = api.patch(url, json={"name": "Fresh"}, headers={"If-None-Match": "*"})
    assert response.status_code == 204
    assert key_of(api, response) == key
    assert read(api, key)["name"] == "Fresh"

    again = api.patch(url, json={"name": "Overwrite"}, headers={"If-None-Match": "*"})
    assert error(again) == (412, "0x80040237")
    assert read(api, key)["name"] == "Fresh"


def test_patch_upserts_a_missing_record(api):
    key = str(uuid.uuid4())
    before = count(api)
    response = api.patch(f"{api.base}accounts({key})", json={"name": "Upserted"})
    assert response.status_code == 204
    assert key_of(api, response) == key
    assert read(api, key)["name"] == "Upserted"
    assert count(api) == before + 1


def test_patch_with_return_representation_is_201_when_created_and_200_when_updated(api):
    key = str(uuid.uuid4())
    url = f"{api.base}accounts({key})"
    prefer = {"Prefer": "return=representation"}
    created = api.patch(url, params={"$select": "name"}, json={"name": "One"}, headers=prefer)
    assert created.status_code == 201
    assert created.json() == {
        "@odata.context": f"{api.base}$metadata#accounts(name)/$entity",
        "@odata.etag": created.headers["ETag"],
        "name": "One",
        "accountid": key,
    }
    updated = api.patch(url, params={"$select": "name"}, json={"name": "Two"}, headers=prefer)
    assert updated.status_code == 200
    assert updated.json()["name"] == "Two"
    assert updated.json()["@odata.etag"] != created.json()["@odata.etag"]


def test_patch_with_a_key_in_the_body_that_differs_from_the_url_is_400(api):
    key = create(api, {"name": "Mine"})
    response = api.patch(f"{api.base}accounts({key})", json={"accountid": str(uuid.uuid4())})
    assert response.status_code == 400
    assert read(api, key)["name"] == "Mine"


def test_a_malformed_key_in_the_url_is_400(api):
    response = api.patch(api.base + "accounts(not-a-guid)", json={"name": "x"})
    assert error(response) == (400, "0x80060888")


# Delete -----------------------------------------------------------------------------------------
def test_delete_removes_the_record_and_a_second_delete_is_404(api):
    key = create(api, {"name": "Doomed"})
    before = count(api)
    url = f"{api.base}accounts({key})"
    response = api.delete(url)
    assert response.status_code == 204
    assert response.content == b""
    assert count(api) == before - 1
    gone = api.get(url)
    assert error(gone) == (404, "0x80040217")
    assert gone.json()["error"]["message"] == f"account With Id = {key} Does Not Exist"
    assert error(api.delete(url)) == (404, "0x80040217")


def test_writes_to_an_unknown_entity_set_are_404(api):
    response = api.post(api.base + "widgets", json={"name": "x"})
    assert error(response) == (404, "0x8006088a")


def test_put_on_a_record_is_405(api):
    key = create(api, {"name": "Put"})
    response = api.put(f"{api.base}accounts({key})", json={"name": "x"})
    assert response.status_code == 405


# Validation -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body, code",
    [
        ({"name": "x" * 161}, "0x80044331"),
        ({"name": "\U0001f680" * 81}, "0x80044331"),  # 162 UTF-16 units
        ({"telephone1": "9" * 51}, "0x80044331"),
        ({"numberofemployees": 2**31}, "0x80044331"),
        ({"numberofemployees": -(2**31) - 1}, "0x80044331"),
        ({"industrycode": 11}, "0x8004431a"),
        ({"industrycode": 0}, "0x8004431a"),
        ({"nosuchcolumn": 1}, "0x80048d19"),
        ({"_parentaccountid_value": str(uuid.uuid4())}, "0x80048d19"),
        ({"new_foundedon": "1752-12-31"}, "0x80044331"),
        ({"overriddencreatedon": "1752-12-31T23:59:59Z"}, "0x80044331"),
    ],
    ids=[
        "name-too-long",
        "name-too-long-in-utf16-units",
        "phone-too-long",
        "int32-too-big",
        "int32-too-small",
        "undeclared-option",
        "option-zero",
        "unknown-property",
        "lookup-value-property",
        "date-before-1753",
        "datetime-before-1753",
    ],
)
def test_invalid_values_are_400_with_the_dataverse_code(api, body, code):
    before = count(api)
    response = api.post(api.base + "accounts", json={"name": "Invalid", **body})
    assert error(response) == (400, code)
    assert count(api) == before


def test_dates_and_times_start_in_1753_and_keep_whole_seconds(api):
    """Dataverse supports dates and times from 1/1/1753; it drops the fraction of a second,
    before 1970 too (toward the earlier second)."""
    body = {"new_foundedon": "1753-01-01", "overriddencreatedon": "1969-12-31T23:59:59.5Z"}
    key = create(api, {"name": "Earliest", **body})
    record = api.get(f"{api.base}accounts({key})").json()
    assert record["new_foundedon"] == "1753-01-01"
    assert record["createdon"] == "1969-12-31T23:59:59Z"


@pytest.mark.parametrize(
    "body",
    [
        {"name": 5},
        {"name": ["a"]},
        {"numberofemployees": "12"},
        {"numberofemployees": 1.5},
        {"numberofemployees": True},
        {"new_ukbased": "true"},
        {"new_ukbased": 1},
        {"new_foundedon": "2020-02-30"},
        {"new_foundedon": "30/01/2020"},
        {"industrycode": "1"},
        {"revenue": "lots"},
    ],
)
def test_values_of_the_wrong_json_type_are_400(api, body):
    before = count(api)
    response = api.post(api.base + "accounts", json={"name": "Typed", **body})
    assert response.status_code == 400
    assert re.fullmatch(r"0x[0-9a-f]{8}", response.json()["error"]["code"])
    assert count(api) == before


def test_values_at_the_limits_are_accepted(api):
    key = create(
        api,
        {"name": "n" * 160, "numberofemployees": 2**31 - 1, "industrycode": 10},
    )
    record = read(api, key)
    assert (record["name"], record["numberofemployees"], record["industrycode"]) == (
        "n" * 160,
        2**31 - 1,
        10,
    )
    response = api.patch(f"{api.base}accounts({key})", json={"numberofemployees": -(2**31)})
    assert response.status_code == 204
    assert read(api, key)["numberofemployees"] == -(2**31)


def test_a_bad_value_in_a_patch_leaves_the_record_unchanged(api):
    key = create(api, {"name": "Stable", "numberofemployees": 3})
    response = api.patch(
        f"{api.base}accounts({key})", json={"name": "Changed", "numberofemployees": 2**40}
    )
    assert error(response) == (400, "0x80044331")
    record = read(api, key)
    assert (record["name"], record["numberofemployees"]) == ("Stable", 3)


@pytest.mark.parametrize(
    "data",
    [b'{"name": ', b"not json", b"\xff\xfe", b'{"name": "a",}'],
    ids=["truncated", "text", "not-utf8", "trailing-comma"],
)
def test_a_body_that_is_not_json_is_400(api, data):
    before = count(api)
    response = api.post(
        api.base + "accounts", data=data, headers={"Content-Type": "application/json"}
    )
    assert error(response) == (400, "0x80048d19")
    assert count(api) == before


@pytest.mark.parametrize("data", [b"", b"[]", b'"name"', b"null", b"42"])
def test_a_body_that_is_not_a_json_object_is_400(api, data):
    before = count(api)
    response = api.post(
        api.base + "accounts", data=data, headers={"Content-Type": "application/json"}
    )
    assert error(response) == (400, "0x80048d19")
    assert count(api) == before


# Lookups ----------------------------------------------------------------------------------------
def test_bind_rebind_and_unbind_a_lookup(api):
    parent = create(api, {"name": "Parent"})
    other = create(api, {"name": "Other parent"})
    child = create(api, {"name": "Child", "parentaccountid@odata.bind": f"/accounts({parent})"})
    url = f"{api.base}accounts({child})"

    def lookup() -> str | None:
        return read(api, child, **{"$select": "_parentaccountid_value"})["_parentaccountid_value"]

    assert lookup() == parent
    # the relative form without a leading slash, as in Microsoft's examples
    assert (
        api.patch(url, json={"parentaccountid@odata.bind": f"accounts({other})"}).status_code == 204
    )
    assert lookup() == other
    assert api.patch(url, json={"parentaccountid@odata.bind": None}).status_code == 204
    assert lookup() is None
    absolute = f"{api.base}accounts({parent})"
    assert api.patch(url, json={"parentaccountid@odata.bind": absolute}).status_code == 204
    assert lookup() == parent
    # the navigation property itself set to null also disassociates
    assert api.patch(url, json={"parentaccountid": None}).status_code == 204
    assert lookup() is None


def test_a_contact_binds_its_account_through_the_typed_navigation_property(api):
    account = create(api, {"name": "Employer"})
    contact = create(
        api,
        {"lastname": "Worker", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
        "contacts",
    )
    assert read(api, contact, "contacts")["_parentcustomerid_value"] == account
    url = f"{api.base}contacts({contact})"
    assert api.patch(url, json={"parentcustomerid_account": None}).status_code == 204
    assert read(api, contact, "contacts")["_parentcustomerid_value"] is None
    untyped = api.patch(url, json={"parentcustomerid@odata.bind": f"/accounts({account})"})
    assert error(untyped) == (400, "0x80048d19")


def test_binding_a_missing_record_is_404_and_creates_nothing(api):
    before = count(api)
    missing = str(uuid.uuid4())
    response = api.post(
        api.base + "accounts",
        json={"name": "Orphan", "parentaccountid@odata.bind": f"/accounts({missing})"},
    )
    assert error(response) == (404, "0x80040217")
    assert response.json()["error"]["message"] == f"account With Id = {missing} Does Not Exist"
    assert count(api) == before


@pytest.mark.parametrize(
    "reference",
    ["/contacts({key})", "/accounts", "accounts(not-a-guid)", 42],
    ids=["wrong-entity-set", "no-key", "bad-key", "not-a-string"],
)
def test_binding_something_that_is_not_an_account_is_400(api, reference):
    key = create(api, {"name": "Target"})
    if isinstance(reference, str):
        reference = reference.format(key=key)
    response = api.post(
        api.base + "accounts", json={"name": "Bad bind", "parentaccountid@odata.bind": reference}
    )
    assert response.status_code == 400


def test_deleting_an_account_clears_the_lookups_that_pointed_at_it(api):
    parent = create(api, {"name": "Going"})
    child = create(api, {"name": "Staying", "parentaccountid@odata.bind": f"/accounts({parent})"})
    contact = create(
        api,
        {"lastname": "Staying", "parentcustomerid_account@odata.bind": f"/accounts({parent})"},
        "contacts",
    )
    unrelated = create(api, {"name": "Unrelated"})
    child_etag = read(api, child)["@odata.etag"]
    unrelated_etag = read(api, unrelated)["@odata.etag"]

    assert api.delete(f"{api.base}accounts({parent})").status_code == 204

    child_after = read(api, child)
    assert child_after["_parentaccountid_value"] is None
    assert child_after["@odata.etag"] != child_etag
    assert child_after["name"] == "Staying"
    assert read(api, contact, "contacts")["_parentcustomerid_value"] is None
    assert read(api, unrelated)["@odata.etag"] == unrelated_etag
