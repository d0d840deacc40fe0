"""Alternate keys declared in the schema: reads, upserts, deletes and binds by
``accounts(accountnumber='A-1')``, and duplicate values refused as Dataverse refuses them."""

from __future__ import annotations

import uuid

import pytest

DUPLICATE_ENTITY_KEY = "0x80060892"


def number() -> str:
    return f"A-{uuid.uuid4().hex[:8]}"


def by_number(api, value: str) -> str:
    escaped = value.replace("'", "''")
    return f"{api.base}accounts(accountnumber='{escaped}')"


def upsert(api, value: str, body: dict):
    return api.patch(
        by_number(api, value), json=body, headers={"Prefer": "return=representation"}, timeout=30
    )


def test_patch_by_alternate_key_creates_then_updates(api):
    value = number()
    created = upsert(api, value, {"name": "Keyed"})
    assert created.status_code == 201
    record = created.json()
    assert record["accountnumber"] == value
    updated = upsert(api, value, {"name": "Keyed again"})
    assert updated.status_code == 200
    assert updated.json()["accountid"] == record["accountid"]
    assert api.get(by_number(api, value.lower()), timeout=30).json()["name"] == "Keyed again"


def test_a_key_with_quotes_parentheses_and_slashes(api):
    value = "O'Brien (EU)/1"
    assert api.patch(by_number(api, value), json={"name": "Odd key"}, timeout=30).status_code == 204
    assert api.get(by_number(api, value), timeout=30).json()["accountnumber"] == value


def test_primary_key_by_name(api):
    key = api.patch(
        by_number(api, number()),
        json={"name": "Named"},
        headers={"Prefer": "return=representation"},
    ).json()["accountid"]
    assert api.get(f"{api.base}accounts(accountid={key})", timeout=30).json()["name"] == "Named"


def test_missing_alternate_key_is_404_for_reads_updates_and_deletes(api):
    url = by_number(api, number())
    assert api.get(url, timeout=30).status_code == 404
    assert api.patch(url, json={"name": "x"}, headers={"If-Match": "*"}).status_code == 404
    response = api.delete(url, timeout=30)
    assert response.status_code == 404
    assert "does not exist in account entity" in response.json()["error"]["message"]


def test_delete_and_bind_by_alternate_key(api):
    value = number()
    api.patch(by_number(api, value), json={"name": "Parent by key"}, timeout=30)
    child = api.post(
        api.base + "accounts",
        json={"name": "Child", "parentaccountid@odata.bind": f"/accounts(accountnumber='{value}')"},
        headers={"Prefer": "return=representation"},
        timeout=30,
    ).json()
    parent = api.get(by_number(api, value), timeout=30).json()
    assert child["_parentaccountid_value"] == parent["accountid"]
    assert api.delete(by_number(api, value), timeout=30).status_code == 204
    assert api.get(by_number(api, value), timeout=30).status_code == 404


@pytest.mark.parametrize("how", ["post", "patch-other-record"])
def test_a_duplicate_alternate_key_is_412_with_dataverse_wording(api, how):
    value = number()
    api.patch(by_number(api, value), json={"name": "First"}, timeout=30)
    if how == "post":
        response = api.post(
            api.base + "accounts", json={"name": "Second", "accountnumber": value.upper()}
        )
    else:
        other = api.post(
            api.base + "accounts",
            json={"name": "Other"},
            headers={"Prefer": "return=representation"},
        ).json()["accountid"]
        response = api.patch(f"{api.base}accounts({other})", json={"accountnumber": value})
    assert response.status_code == 412
    error = response.json()["error"]
    assert error["code"] == DUPLICATE_ENTITY_KEY
    assert error["message"].startswith("A record that has the attribute values accountnumber")


def test_records_without_a_key_value_are_not_duplicates(api):
    for _ in range(2):
        assert api.post(api.base + "accounts", json={"name": "No number"}).status_code == 204


@pytest.mark.parametrize(
    "segment", ["name='Acme'", "accountnumber=", "accountnumber='x',accountnumber='y'", "a=b=c"]
)
def test_a_key_that_is_not_declared_is_400(api, segment):
    assert api.get(f"{api.base}accounts({segment})", timeout=30).status_code == 400
