"""Dataverse functions: ``RetrieveTotalRecordCount``."""

from __future__ import annotations

import pytest


def test_retrieve_total_record_count_answers_each_table(api, cdms_simulator):
    cdms_simulator.load("accounts", [{"name": f"Extra {i}"} for i in range(5)])
    response = api.get(
        api.base + "RetrieveTotalRecordCount(EntityNames=@p1)",
        params={"@p1": "['account','contact']"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "@odata.context": f"{api.base}$metadata#Microsoft.Dynamics.CRM."
        "RetrieveTotalRecordCountResponse",
        "EntityRecordCountCollection": {
            "Count": 2,
            "IsReadOnly": False,
            "Keys": ["account", "contact"],
            "Values": [15, 6],
        },
    }


def test_retrieve_total_record_count_takes_the_list_inline_too(api):
    response = api.get(api.base + 'RetrieveTotalRecordCount(EntityNames=["contact"])')
    assert response.json()["EntityRecordCountCollection"]["Values"] == [6]


def test_retrieve_total_record_count_of_an_unknown_table_is_404(api):
    response = api.get(api.base + "RetrieveTotalRecordCount(EntityNames=['accounts'])")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80041102"  # not in the MetadataCache


@pytest.mark.parametrize(
    "arguments", ["EntityNames=account", "Names=['account']", "EntityNames=[account]", ""]
)
def test_retrieve_total_record_count_refuses_malformed_arguments(api, arguments):
    response = api.get(api.base + f"RetrieveTotalRecordCount({arguments})")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"


def test_retrieve_total_record_count_is_a_function_read_with_get(api):
    response = api.post(api.base + "RetrieveTotalRecordCount(EntityNames=['account'])", json={})
    assert response.status_code == 405
