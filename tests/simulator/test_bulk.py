"""``CreateMultiple``, ``UpdateMultiple`` and ``UpsertMultiple``: all or nothing, one request
for the throttle, the fault rules and the journal."""

from __future__ import annotations

import uuid

import pytest

ACCOUNT = "Microsoft.Dynamics.CRM.account"


def action(api, name: str, targets: list, entity_set: str = "accounts"):
    return api.post(
        f"{api.base}{entity_set}/Microsoft.Dynamics.CRM.{name}",
        json={"Targets": targets},
        headers={"If-None-Match": "null"},
        timeout=30,
    )


def names(api, prefix: str) -> list[str]:
    response = api.get(
        api.base + "accounts",
        params={"$select": "name", "$filter": f"startswith(name,'{prefix}')", "$orderby": "name"},
        timeout=30,
    )
    return [r["name"] for r in response.json()["value"]]


def test_create_multiple_returns_the_ids_in_order(api):
    prefix = f"Bulk {uuid.uuid4().hex[:6]}"
    response = action(api, "CreateMultiple", [
        {"name": f"{prefix} {i}", "@odata.type": ACCOUNT} for i in range(3)
    ])  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["@odata.context"].endswith(
        "$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    )
    ids = body["Ids"]
    for i, key in enumerate(ids):
        assert api.get(f"{api.base}accounts({key})", timeout=30).json()["name"] == f"{prefix} {i}"


def test_create_multiple_is_all_or_nothing(api):
    prefix = f"Atomic {uuid.uuid4().hex[:6]}"
    response = action(api, "CreateMultiple", [
        {"name": f"{prefix} ok", "@odata.type": ACCOUNT},
        {"name": "x" * 161, "@odata.type": ACCOUNT},
    ])  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80044331"
    assert names(api, prefix) == []


@pytest.mark.parametrize(
    "target",
    [{"name": "No type"}, {"name": "Wrong type", "@odata.type": "Microsoft.Dynamics.CRM.contact"}],
    ids=["missing", "another-table"],
)
def test_every_target_needs_the_type_of_the_entity_set(api, target):
    response = action(api, "CreateMultiple", [target])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80048d19"


def test_update_multiple_changes_existing_records_only(api):
    prefix = f"Upd {uuid.uuid4().hex[:6]}"
    ids = action(api, "CreateMultiple", [
        {"name": f"{prefix} {i}", "@odata.type": ACCOUNT} for i in range(2)
    ]).json()["Ids"]  # fmt: skip
    response = action(api, "UpdateMultiple", [
        {"accountid": key, "name": f"{prefix} renamed {i}", "@odata.type": ACCOUNT}
        for i, key in enumerate(ids)
    ])  # fmt: skip
    assert response.status_code == 204
    assert names(api, prefix) == [f"{prefix} renamed 0", f"{prefix} renamed 1"]
    missing = action(api, "UpdateMultiple", [
        {"accountid": ids[0], "name": f"{prefix} again", "@odata.type": ACCOUNT},
        {"accountid": str(uuid.uuid4()), "name": "Nobody", "@odata.type": ACCOUNT},
    ])  # fmt: skip
    assert missing.status_code == 404
    assert names(api, prefix) == [f"{prefix} renamed 0", f"{prefix} renamed 1"]


def test_upsert_multiple_by_alternate_key_creates_then_updates(api):
    number = f"UM-{uuid.uuid4().hex[:6]}"
    target = {
        "@odata.type": ACCOUNT,
        "@odata.id": f"accounts(accountnumber='{number}')",
        "name": f"Upserted {number}",
    }
    assert action(api, "UpsertMultiple", [target]).status_code == 204
    assert action(api, "UpsertMultiple", [{**target, "name": f"Again {number}"}]).status_code == 204
    found = api.get(
        api.base + "accounts",
        params={"$filter": f"accountnumber eq '{number}'", "$select": "name"},
        timeout=30,
    ).json()["value"]
    assert [r["name"] for r in found] == [f"Again {number}"]


def test_a_bulk_action_is_one_request_for_the_journal_throttle_and_faults(api, cdms_simulator):
    cdms_simulator.clear_journal()
    targets = [{"name": f"Counted {i}", "@odata.type": ACCOUNT} for i in range(5)]
    assert action(api, "CreateMultiple", targets).status_code == 200
    (entry,) = cdms_simulator.journal()
    assert entry["path"].endswith("/accounts/Microsoft.Dynamics.CRM.CreateMultiple")
    cdms_simulator.add_faults({"path": "CreateMultiple$", "status": 503})
    assert action(api, "CreateMultiple", targets).status_code == 503
    cdms_simulator.throttle(1)
    assert action(api, "CreateMultiple", targets).status_code == 200
    assert action(api, "CreateMultiple", targets).status_code == 429


def test_a_table_without_the_message_refuses_it(api):
    response = action(api, "CreateMultiple", [
        {"name": "x", "@odata.type": "Microsoft.Dynamics.CRM.sdkmessage"}
    ], entity_set="sdkmessages")  # fmt: skip
    assert response.status_code == 400
