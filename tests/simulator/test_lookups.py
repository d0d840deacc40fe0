"""Polymorphic (customer) lookups, lookup and option-set annotations, and what Dataverse's own
clients send: LF-only ``$batch`` bodies, unencoded query strings, ``If-None-Match: null`` and
``Prefer: return=representation`` on updates."""

from __future__ import annotations

import uuid

from cdms_api.simulator.seed import demo_key
from tests.seeded import ACME, ACME_KEY, ADA

ANNOTATIONS = {"Prefer": 'odata.include-annotations="*"'}


def post(api, entity_set: str, body: dict) -> dict:
    response = api.post(
        api.base + entity_set, json=body, headers={"Prefer": "return=representation"}, timeout=30
    )
    assert response.status_code == 201, response.text
    return response.json()


def child_of(api, parent: dict, lastname: str) -> dict:
    bind = f"/contacts({parent['contactid']})"
    return post(
        api, "contacts", {"lastname": lastname, "parentcustomerid_contact@odata.bind": bind}
    )


def test_a_contact_whose_parent_is_a_contact(api):
    parent = post(api, "contacts", {"lastname": "Parent"})
    child = child_of(api, parent, "Child")
    assert child["_parentcustomerid_value"] == parent["contactid"]
    read = api.get(
        f"{api.base}contacts({child['contactid']})",
        params={"$expand": "parentcustomerid_contact($select=lastname),parentcustomerid_account"},
        headers=ANNOTATIONS,
        timeout=30,
    ).json()
    assert read["parentcustomerid_contact"]["lastname"] == "Parent"
    assert read["parentcustomerid_account"] is None
    assert read["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    assert (
        read["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"]
        == "parentcustomerid_contact"
    )
    assert read["_parentcustomerid_value@OData.Community.Display.V1.FormattedValue"] == "Parent"


def test_filters_through_each_navigation_see_only_their_target_type(api):
    parent = post(api, "contacts", {"lastname": "Acme Holdings"})  # same name as an account
    child_of(api, parent, "Nephew")

    def lastnames(condition: str) -> set[str]:
        response = api.get(
            api.base + "contacts", params={"$filter": condition, "$select": "lastname"}, timeout=30
        )
        return {r["lastname"] for r in response.json()["value"]}

    assert lastnames("parentcustomerid_account/name eq 'Acme Holdings'") == {"Lovelace"}
    assert lastnames("parentcustomerid_contact/lastname eq 'Acme Holdings'") == {"Nephew"}
    children = api.get(
        api.base + "contacts",
        params={"$filter": "contact_customer_contacts/any(c:c/lastname eq 'Nephew')"},
        timeout=30,
    ).json()["value"]
    assert [c["contactid"] for c in children] == [parent["contactid"]]


def test_the_untyped_lookup_name_cannot_be_bound(api):
    response = api.post(
        api.base + "contacts",
        json={"lastname": "Untyped", "parentcustomerid@odata.bind": f"/accounts({ACME_KEY})"},
        timeout=30,
    )
    assert response.status_code == 400


def test_deleting_a_contact_clears_only_the_lookups_pointing_at_it(api):
    parent = post(api, "contacts", {"lastname": "Going"})
    child = child_of(api, parent, "Kept")
    assert api.delete(f"{api.base}contacts({parent['contactid']})", timeout=30).status_code == 204
    after = api.get(f"{api.base}contacts({child['contactid']})", timeout=30).json()
    assert after["_parentcustomerid_value"] is None
    ada = api.get(f"{api.base}contacts({demo_key(ADA)})", timeout=30).json()
    assert ada["_parentcustomerid_value"] == ACME_KEY


def test_formatted_values_only_when_asked(api):
    params = {
        "$select": "name,industrycode,_parentaccountid_value",
        "$filter": "name eq 'Acme Widgets'",
    }
    plain = api.get(api.base + "accounts", params=params, timeout=30).json()["value"][0]
    assert not any("@" in name for name in plain if name != "@odata.etag")
    prefer = {"Prefer": 'odata.include-annotations="OData.Community.Display.V1.FormattedValue"'}
    response = api.get(api.base + "accounts", params=params, headers=prefer, timeout=30)
    (row,) = response.json()["value"]
    assert row["industrycode@OData.Community.Display.V1.FormattedValue"] == "Distributors"
    assert row["_parentaccountid_value@OData.Community.Display.V1.FormattedValue"] == ACME
    assert "_parentaccountid_value@Microsoft.Dynamics.CRM.lookuplogicalname" not in row
    assert "odata.include-annotations" in response.headers["Preference-Applied"]


def test_prefer_with_annotations_and_page_size_in_one_header(api):
    response = api.get(
        api.base + "contacts",
        params={"$select": "lastname,_parentcustomerid_value"},
        headers={
            "Prefer": 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname,'
            'OData.Community.Display.V1.FormattedValue",odata.maxpagesize=2'
        },
        timeout=30,
    )
    body = response.json()
    assert len(body["value"]) == 2 and "@odata.nextLink" in body
    first = body["value"][0]
    if first["_parentcustomerid_value"]:
        assert (
            first["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
        )


def test_lf_only_batch_with_if_none_match_null(api):
    boundary = f"batch_{uuid.uuid4()}"
    name = f"LF batch {uuid.uuid4().hex[:6]}"
    body = (
        f"--{boundary}\nContent-Type: application/http\nContent-Transfer-Encoding: binary\n\n"
        f"POST {api.base}accounts HTTP/1.1\nContent-Type: application/json; type=entry\n\n\n"
        f'{{"name": "{name}"}}\n'
        f"\n--{boundary}--\n\n"
    )
    response = api.post(
        api.base + "$batch",
        data=body.encode(),
        headers={
            "Content-Type": f'multipart/mixed; boundary="{boundary}"',
            "If-None-Match": "null",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert "HTTP/1.1 204" in response.text
    found = api.get(api.base + "accounts", params={"$filter": f"name eq '{name}'"}, timeout=30)
    assert len(found.json()["value"]) == 1


def test_unencoded_quotes_colons_and_slashes_in_the_query_string(api):
    url = (
        f"{api.base}accounts?$select=name,websiteurl"
        "&$filter=websiteurl eq 'https://acme.example' and name ne 'O''Brien'"
    )
    response = api.get(url, timeout=30)
    assert response.status_code == 200
    assert [r["name"] for r in response.json()["value"]] == [ACME]


def test_patch_with_if_none_match_null_and_return_representation_is_200_with_the_record(api):
    record = post(api, "accounts", {"name": "Before"})
    response = api.patch(
        f"{api.base}accounts({record['accountid']})",
        json={"name": "After"},
        headers={"If-None-Match": "null", "If-Match": "*", "Prefer": "return=representation"},
        timeout=30,
    )
    assert response.status_code == 200
    assert response.json()["name"] == "After"
