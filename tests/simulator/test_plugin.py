"""The pytest plugin as a downstream project uses it: a schema of its own with
``--cdms-schema``, served to its tests by the ``cdms_simulator`` fixture."""

from __future__ import annotations

pytest_plugins = ["pytester"]

SCHEMA = """
entity_sets:
  new_widgets:
    entity_type: new_widget
    key: new_widgetid
    primary_name: new_name
    alternate_keys: {new_code: [new_code]}
    properties:
      new_widgetid: {type: Guid}
      new_name: {type: String, max_length: 100}
      new_code: {type: String, max_length: 10}
"""

DOWNSTREAM_TEST = """
def test_my_table(cdms_simulator):
    api = cdms_simulator.session()
    url = cdms_simulator.base_url + "new_widgets(new_code='W-1')"
    assert api.patch(url, json={"new_name": "Sprocket"}).status_code == 204
    assert api.get(url).json()["new_name"] == "Sprocket"
    definition = api.get(cdms_simulator.base_url + "EntityDefinitions(LogicalName='new_widget')")
    assert definition.json()["PrimaryIdAttribute"] == "new_widgetid"
    assert api.get(cdms_simulator.base_url + "accounts").status_code == 404
"""


def test_a_downstream_project_tests_against_its_own_schema(pytester):
    pytester.makefile(".yaml", widgets=SCHEMA)
    pytester.makepyfile(test_widgets=DOWNSTREAM_TEST)
    result = pytester.runpytest_subprocess(
        "--cdms-schema", "widgets.yaml", "--cdms-seed", "none", "-p", "no:django", "-q"
    )
    result.assert_outcomes(passed=1)
