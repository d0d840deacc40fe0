from tests.seeded import ENTITY_SETS


def test_service_document_lists_entity_sets(api):
    response = api.get(api.base)
    assert response.status_code == 200
    assert {s["name"] for s in response.json()["value"]} == set(ENTITY_SETS)
