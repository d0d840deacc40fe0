"""Change tracking: ``Prefer: odata.track-changes``, ``@odata.deltaLink`` and delta reads with
``$deletedEntity`` entries."""

from __future__ import annotations

import uuid

import pytest
import requests

from cdms_api.simulator.options import encode_token
from cdms_api.simulator.schema import Schema

TRACK = {"Prefer": "odata.track-changes"}


def create(api, body: dict, entity_set: str = "accounts") -> str:
    response = api.post(api.base + entity_set, json=body)
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def start_tracking(api, entity_set: str = "accounts", **params) -> tuple[list[dict], str]:
    """Read every page of a tracked collection; answer its rows and the delta link."""
    rows: list[dict] = []
    response = api.get(api.base + entity_set, params=params, headers=TRACK)
    while True:
        assert response.status_code == 200, response.text
        assert "odata.track-changes" in response.headers["Preference-Applied"]
        body = response.json()
        rows += body["value"]
        if "@odata.nextLink" not in body:
            return rows, body["@odata.deltaLink"]
        response = api.get(body["@odata.nextLink"], headers=TRACK)


def follow(api, delta_link: str) -> dict:
    response = api.get(delta_link, headers=TRACK)
    assert response.status_code == 200, response.text
    return response.json()


def deleted(api, key: str, entity_set: str = "accounts") -> dict:
    return {
        "@odata.context": f"{api.base}$metadata#{entity_set}/$deletedEntity",
        "id": key,
        "reason": "deleted",
    }


def test_a_tracked_read_ends_with_a_delta_link(api):
    response = api.get(api.base + "accounts", params={"$select": "name"}, headers=TRACK)
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "odata.track-changes"
    body = response.json()
    assert "@odata.nextLink" not in body
    assert body["@odata.deltaLink"].startswith(f"{api.base}accounts?")
    assert "$deltatoken=" in body["@odata.deltaLink"]
    assert "$select=name" in body["@odata.deltaLink"]


def test_an_untracked_read_has_no_delta_link(api):
    body = api.get(api.base + "accounts", params={"$select": "name"}).json()
    assert "@odata.deltaLink" not in body


def test_a_delta_read_reports_creates_updates_and_deletes(api):
    updated = create(api, {"name": "Will change", "numberofemployees": 1})
    removed = create(api, {"name": "Will go"})
    unchanged = create(api, {"name": "Stays the same"})
    rows, delta_link = start_tracking(api, **{"$select": "name,numberofemployees"})
    assert {updated, removed, unchanged} <= {row["accountid"] for row in rows}

    added = create(api, {"name": "New", "numberofemployees": 5})
    assert api.patch(f"{api.base}accounts({updated})", json={"numberofemployees": 2}).ok
    assert api.delete(f"{api.base}accounts({removed})").status_code == 204

    body = follow(api, delta_link)
    assert body["@odata.context"] == (
        f"{api.base}$metadata#accounts(name,numberofemployees)/$delta"
    )
    changed = {row["accountid"]: row for row in body["value"] if "reason" not in row}
    assert {key: (row["name"], row["numberofemployees"]) for key, row in changed.items()} == {
        added: ("New", 5),
        updated: ("Will change", 2),
    }
    assert set(changed[added]) == {"@odata.etag", "name", "numberofemployees", "accountid"}
    assert [row for row in body["value"] if "reason" in row] == [deleted(api, removed)]
    assert body["@odata.deltaLink"] != delta_link

    # nothing has happened since: the next delta is empty
    again = follow(api, body["@odata.deltaLink"])
    assert again["value"] == []

    # and a later change shows up in the delta after that
    assert api.patch(f"{api.base}accounts({unchanged})", json={"name": "Changed at last"}).ok
    later = follow(api, again["@odata.deltaLink"])
    assert [(row["accountid"], row["name"]) for row in later["value"]] == [
        (unchanged, "Changed at last")
    ]


def test_an_old_delta_link_still_reports_everything_since(api):
    create(api, {"name": "First"})
    _, delta_link = start_tracking(api, **{"$select": "name"})
    second = create(api, {"name": "Second"})
    newer = follow(api, delta_link)["@odata.deltaLink"]
    third = create(api, {"name": "Third"})
    assert {row["accountid"] for row in follow(api, delta_link)["value"]} == {second, third}
    assert {row["accountid"] for row in follow(api, newer)["value"]} == {third}


def test_a_record_updated_then_deleted_is_reported_deleted_only(api):
    key = create(api, {"name": "Short-lived"})
    _, delta_link = start_tracking(api, **{"$select": "name"})
    assert api.patch(f"{api.base}accounts({key})", json={"name": "Shorter"}).ok
    assert api.delete(f"{api.base}accounts({key})").status_code == 204
    assert follow(api, delta_link)["value"] == [deleted(api, key)]


def test_deleting_an_account_shows_its_unlinked_contacts_in_the_contacts_delta(api):
    account = create(api, {"name": "Employer"})
    contact = create(
        api,
        {"lastname": "Staff", "parentcustomerid_account@odata.bind": f"/accounts({account})"},
        "contacts",
    )
    _, contacts_link = start_tracking(api, "contacts", **{"$select": "lastname"})
    _, accounts_link = start_tracking(api, "accounts", **{"$select": "name"})
    assert api.delete(f"{api.base}accounts({account})").status_code == 204
    contacts = follow(api, contacts_link)["value"]
    assert [(row["contactid"], row["lastname"]) for row in contacts] == [(contact, "Staff")]
    assert follow(api, accounts_link)["value"] == [deleted(api, account)]


def test_paging_with_track_changes_gives_the_delta_link_on_the_last_page_only(api):
    prefix = f"Paged {uuid.uuid4().hex[:8]}"
    for i in range(5):
        create(api, {"name": f"{prefix} {i}"})
    total = int(api.get(api.base + "accounts/$count").text)
    page_size = 3
    headers = {"Prefer": f"odata.maxpagesize={page_size}, odata.track-changes"}
    response = api.get(api.base + "accounts", params={"$select": "name"}, headers=headers)
    pages, keys, created_meanwhile = [], [], None
    while True:
        assert response.status_code == 200
        assert response.headers["Preference-Applied"] == (
            f"odata.maxpagesize={page_size}, odata.track-changes"
        )
        body = response.json()
        pages.append(body)
        keys += [row["accountid"] for row in body["value"]]
        if created_meanwhile is None:
            created_meanwhile = create(api, {"name": f"{prefix} meanwhile"})
        if "@odata.nextLink" not in body:
            break
        assert "@odata.deltaLink" not in body
        assert len(body["value"]) == page_size
        response = api.get(body["@odata.nextLink"], headers=headers)

    assert len(pages) == -(-len(keys) // page_size)
    assert "@odata.deltaLink" in pages[-1]
    assert len(set(keys)) == len(keys)
    assert len(keys) in (total, total + 1)  # the record created while paging may be on a page
    delta = follow(api, pages[-1]["@odata.deltaLink"])
    assert [row["accountid"] for row in delta["value"]] == [created_meanwhile]


def delta_pages(api, delta_link: str, page_size: int) -> list[dict]:
    """Every page of a delta read, each checked: a full page with a next link and no delta
    link, the last with the delta link alone."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}, odata.track-changes"}
    pages, url = [], delta_link
    while url:
        response = api.get(url, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["Preference-Applied"] == (
            f"odata.maxpagesize={page_size}, odata.track-changes"
        )
        body = response.json()
        pages.append(body)
        url = body.get("@odata.nextLink")
        if url:
            assert "@odata.deltaLink" not in body and len(body["value"]) == page_size
    assert "@odata.deltaLink" in pages[-1]
    return pages


def test_a_delta_read_is_paged_oldest_change_first(api):
    """Dataverse pages changes as it pages records (the SDK's ``RetrieveEntityChanges`` has
    ``PageInfo`` and ``MoreRecords``): changes and deletes come once each, in the order they
    were made, across pages of ``odata.maxpagesize``."""
    keys = [create(api, {"name": f"Changes {i}"}) for i in range(6)]
    _, delta_link = start_tracking(api, **{"$select": "name"})
    made = []  # (key, deleted) in the order the changes were made
    for i, key in enumerate(keys):
        if i % 2:
            assert api.delete(f"{api.base}accounts({key})").status_code == 204
        else:
            assert api.patch(f"{api.base}accounts({key})", json={"name": f"Changed {i}"}).ok
        made.append((key, bool(i % 2)))
    made.append((create(api, {"name": "Added"}), False))

    pages = delta_pages(api, delta_link, page_size=3)
    assert [len(page["value"]) for page in pages] == [3, 3, 1]
    entries = [entry for page in pages for entry in page["value"]]
    assert [(e.get("accountid") or e["id"], "reason" in e) for e in entries] == made
    assert entries[0]["name"] == "Changed 0" and entries[1] == deleted(api, keys[1])
    assert all(p["@odata.context"].endswith("#accounts(name)/$delta") for p in pages)
    assert follow(api, pages[-1]["@odata.deltaLink"])["value"] == []


def test_a_delta_read_leaves_a_change_made_while_paging_to_the_next_delta(api):
    keys = [create(api, {"name": f"Paged changes {i}"}) for i in range(4)]
    _, delta_link = start_tracking(api, **{"$select": "name"})
    for key in keys:
        assert api.patch(f"{api.base}accounts({key})", json={"numberofemployees": 1}).ok
    headers = {"Prefer": "odata.maxpagesize=2, odata.track-changes"}
    first = api.get(delta_link, headers=headers).json()
    assert [row["accountid"] for row in first["value"]] == keys[:2]
    # meanwhile: one not read yet changes again, one is deleted, one is created
    assert api.patch(f"{api.base}accounts({keys[2]})", json={"name": "Again"}).ok
    assert api.delete(f"{api.base}accounts({keys[3]})").status_code == 204
    added = create(api, {"name": "Added meanwhile"})
    rest = delta_pages(api, first["@odata.nextLink"], page_size=2)
    assert [entry for page in rest for entry in page["value"]] == []
    later = follow(api, rest[-1]["@odata.deltaLink"])["value"]
    assert [(e.get("accountid") or e["id"], e.get("name")) for e in later] == [
        (keys[2], "Again"),
        (keys[3], None),
        (added, "Added meanwhile"),
    ]


def test_a_made_up_delta_paging_link_is_400(api):
    create(api, {"name": "One"})
    create(api, {"name": "Two"})
    _, delta_link = start_tracking(api, **{"$select": "name"})
    create(api, {"name": "Three"})
    create(api, {"name": "Four"})
    headers = {"Prefer": "odata.maxpagesize=1, odata.track-changes"}
    next_link = api.get(delta_link, headers=headers).json()["@odata.nextLink"]
    since = int(next_link.split("$deltatoken=")[1].split("&")[0])
    token = next_link.split("$skiptoken=")[1].split("&")[0]
    forged = [
        encode_token({"after": [since + 1, 0], "version": since + 2}),  # two positions
        encode_token({"after": [since - 1], "version": since + 2}),  # before the delta token
        encode_token({"after": [since + 1], "version": 10**9}),  # past every version
        encode_token({"after": [since + 2], "version": since + 1}),  # after its own end
        encode_token({"after": ["x"], "version": since + 2}),
    ]
    for value in forged:
        response = api.get(next_link.replace(token, value), headers=headers)
        assert response.status_code == 400, value
        assert response.json()["error"]["code"] == "0x80060888"


def test_an_expired_change_log_refuses_the_paging_links_of_a_delta_read(api, cdms_simulator):
    _, delta_link = start_tracking(api, **{"$select": "name"})
    create(api, {"name": "One"})
    create(api, {"name": "Two"})
    headers = {"Prefer": "odata.maxpagesize=1, odata.track-changes"}
    first = api.get(delta_link, headers=headers).json()
    cdms_simulator.expire_changes("accounts")
    response = api.get(first["@odata.nextLink"], headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == EXPIRED


@pytest.mark.parametrize(
    "option, value",
    [
        ("$filter", "name eq 'x'"),
        ("$orderby", "name"),
        ("$expand", "parentaccountid($select=name)"),
        ("$top", "2"),
    ],
)
def test_track_changes_refuses_filter_orderby_expand_and_top(api, option, value):
    response = api.get(api.base + "accounts", params={option: value}, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "0x80060888",
        "message": f'The "{option}" query parameter isn\'t supported when Change Tracking is '
        "enabled.",
    }


def test_a_delta_link_refuses_a_filter_added_to_it(api):
    _, delta_link = start_tracking(api, **{"$select": "name"})
    response = api.get(delta_link, params={"$filter": "name eq 'x'"}, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"


def test_a_malformed_delta_token_is_400(api):
    response = api.get(api.base + "accounts", params={"$deltatoken": "abc"}, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"


NOT_TRACKED = {
    "code": "0x80072491",
    "message": "Entity contact isn't enabled for change tracking.",
}
EXPIRED = {
    "code": "0x80044352",
    "message": "Version stamp associated with the client has expired. Please perform a full sync.",
}


def test_a_table_without_change_tracking_refuses_a_tracked_read(api, cdms_simulator):
    cdms_simulator.change_tracking("contacts", False)
    response = api.get(api.base + "contacts", params={"$select": "lastname"}, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"] == NOT_TRACKED
    # an ordinary read of it still works, and other tables keep their change tracking
    assert api.get(api.base + "contacts", params={"$select": "lastname"}).status_code == 200
    assert start_tracking(api, **{"$select": "name"})[1]


def test_a_delta_link_of_a_table_whose_tracking_went_off_is_refused(api, cdms_simulator):
    _, delta_link = start_tracking(api, "contacts", **{"$select": "lastname"})
    cdms_simulator.change_tracking("contacts", False)
    response = api.get(delta_link, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"] == NOT_TRACKED
    cdms_simulator.reset()  # back to the schema's word
    assert api.get(delta_link, headers=TRACK).status_code == 200


def test_the_schema_says_which_tables_track_changes():
    schema = Schema.from_dict(
        {
            "entity_sets": {
                "leads": {
                    "entity_type": "lead",
                    "key": "leadid",
                    "change_tracking": False,
                    "properties": {"leadid": {"type": "Guid"}},
                }
            }
        }
    )
    assert schema["leads"].change_tracking is False
    with pytest.raises(ValueError, match="change_tracking must be true or false"):
        Schema.from_dict(
            {
                "entity_sets": {
                    "leads": {
                        "entity_type": "lead",
                        "key": "leadid",
                        "change_tracking": "no",
                        "properties": {"leadid": {"type": "Guid"}},
                    }
                }
            }
        )


def test_an_expired_change_log_refuses_older_delta_links_only(api, cdms_simulator):
    _, old_link = start_tracking(api, **{"$select": "name"})
    _, contacts_link = start_tracking(api, "contacts", **{"$select": "lastname"})
    cdms_simulator.expire_changes("accounts")
    response = api.get(old_link, headers=TRACK)
    assert response.status_code == 400
    assert response.json()["error"] == EXPIRED
    # another table's links are untouched; a full read gives a link that works
    assert follow(api, contacts_link)["value"] == []
    rows, new_link = start_tracking(api, **{"$select": "name"})
    assert len(rows) == 10
    key = create(api, {"name": "After the expiry"})
    assert [row["accountid"] for row in follow(api, new_link)["value"]] == [key]


def test_an_expired_change_log_refuses_the_paging_links_of_a_tracked_read(api, cdms_simulator):
    headers = {"Prefer": "odata.maxpagesize=4, odata.track-changes"}
    first = api.get(api.base + "accounts", params={"$select": "name"}, headers=headers).json()
    cdms_simulator.expire_changes("accounts")
    response = api.get(first["@odata.nextLink"], headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == EXPIRED


def test_the_control_api_checks_the_change_feed_body(cdms_simulator):
    for body in ({"tracking": "off"}, {"expire": 1}, {"what": True}):
        response = requests.post(
            f"{cdms_simulator.root_url}/__admin/changes/accounts", json=body, timeout=10
        )
        assert response.status_code == 400
    response = requests.post(
        f"{cdms_simulator.root_url}/__admin/changes/nothing", json={"expire": True}, timeout=10
    )
    assert response.status_code == 404
