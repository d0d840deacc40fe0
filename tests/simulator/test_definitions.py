"""Table definitions (``EntityDefinitions``), the system tables the clients read to learn what
a table supports, and the unbound functions ``WhoAmI`` and ``RetrieveTotalRecordCount``."""

from __future__ import annotations

import pytest

from tests.seeded import ALL, PEOPLE


def get(api, path: str, **params):
    return api.get(api.base + path, params=params, timeout=30)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_entity_definitions_filtered_by_logical_name_with_select(api):
    body = ok(
        get(
            api,
            "EntityDefinitions",
            **{
                "$select": "LogicalName,EntitySetName,PrimaryIdAttribute",
                "$filter": "LogicalName eq 'email'",
            },
        )
    )
    assert body["@odata.context"].endswith("$metadata#EntityDefinitions")
    (email,) = body["value"]
    assert {k: email[k] for k in ("LogicalName", "EntitySetName", "PrimaryIdAttribute")} == {
        "LogicalName": "email",
        "EntitySetName": "emails",
        "PrimaryIdAttribute": "activityid",
    }
    assert set(email) == {
        "@odata.type",
        "MetadataId",
        "LogicalName",
        "EntitySetName",
        "PrimaryIdAttribute",
    }


def test_entity_definitions_filter_combines_and_or_not(api):
    body = ok(
        get(
            api,
            "EntityDefinitions",
            **{
                "$select": "LogicalName",
                "$filter": "(LogicalName eq 'account' or LogicalName eq 'contact') "
                "and not (ObjectTypeCode eq 2)",
            },
        )
    )
    assert [e["LogicalName"] for e in body["value"]] == ["account"]


def test_an_entity_definition_by_logical_name(api):
    body = ok(get(api, "EntityDefinitions(LogicalName='customeraddress')"))
    assert body["EntitySetName"] == "customeraddresses"
    assert body["PrimaryIdAttribute"] == "customeraddressid"
    assert body["PrimaryNameAttribute"] == "name"
    assert body["ObjectTypeCode"] == 1071
    again = ok(get(api, f"EntityDefinitions({body['MetadataId']})", **{"$select": "LogicalName"}))
    assert again["LogicalName"] == "customeraddress"


def test_an_unknown_entity_definition_is_404(api):
    response = get(api, "EntityDefinitions(LogicalName='nosuchtable')")
    assert response.status_code == 404
    assert "nosuchtable" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [{"$select": "NoSuchProperty"}, {"$filter": "NoSuchProperty eq 'x'"}, {"$top": "1"}],
)
def test_entity_definitions_refuse_what_they_cannot_answer(api, params):
    assert get(api, "EntityDefinitions", **params).status_code == 400


def test_attributes_with_types_and_lookup_targets(api):
    body = ok(
        get(
            api,
            "EntityDefinitions(LogicalName='contact')/Attributes",
            **{"$select": "LogicalName,AttributeType"},
        )
    )
    kinds = {a["LogicalName"]: a["AttributeType"] for a in body["value"]}
    assert kinds["contactid"] == "Uniqueidentifier"
    assert kinds["birthdate"] == "DateTime"
    assert kinds["parentcustomerid"] == "Customer"
    lookups = ok(
        get(
            api,
            "EntityDefinitions(LogicalName='contact')/Attributes/"
            "Microsoft.Dynamics.CRM.LookupAttributeMetadata",
            **{"$select": "LogicalName,Targets"},
        )
    )
    assert [(a["LogicalName"], a["Targets"]) for a in lookups["value"]] == [
        ("parentcustomerid", ["account", "contact"])
    ]


def test_picklist_attributes_expand_their_option_sets(api):
    body = ok(
        get(
            api,
            "EntityDefinitions(LogicalName='account')/Attributes/"
            "Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            **{"$select": "LogicalName", "$expand": "OptionSet($select=Options)"},
        )
    )
    (industry,) = body["value"]
    assert industry["@odata.type"] == "#Microsoft.Dynamics.CRM.PicklistAttributeMetadata"
    options = industry["OptionSet"]["Options"]
    assert options[0]["Value"] == 1
    assert options[0]["Label"]["UserLocalizedLabel"]["Label"] == "Accounting"
    assert len(options) == 10


def test_one_attribute_by_logical_name(api):
    body = ok(get(api, "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='name')"))
    assert (body["AttributeType"], body["MaxLength"], body["IsPrimaryName"]) == (
        "String",
        160,
        True,
    )
    assert (
        get(
            api, "EntityDefinitions(LogicalName='account')/Attributes(LogicalName='nope')"
        ).status_code
        == 404
    )


def test_alternate_keys_and_relationships(api):
    keys = ok(get(api, "EntityDefinitions(LogicalName='account')/Keys"))["value"]
    assert [(k["SchemaName"], k["KeyAttributes"]) for k in keys] == [
        ("accountnumber", ["accountnumber"])
    ]
    many_to_one = ok(get(api, "EntityDefinitions(LogicalName='contact')/ManyToOneRelationships"))
    assert {
        (r["ReferencingEntityNavigationPropertyName"], r["ReferencedEntity"])
        for r in many_to_one["value"]
    } == {("parentcustomerid_account", "account"), ("parentcustomerid_contact", "contact")}
    one_to_many = ok(get(api, "EntityDefinitions(LogicalName='account')/OneToManyRelationships"))
    navigation = {
        r["ReferencedEntityNavigationPropertyName"]: r["ReferencingEntity"]
        for r in one_to_many["value"]
    }
    assert navigation["contact_customer_accounts"] == "contact"
    assert navigation["account_parent_account"] == "account"


def test_sdk_message_filters_say_which_tables_support_bulk_messages(api):
    body = ok(
        get(
            api,
            "sdkmessagefilters",
            **{
                "$select": "sdkmessagefilterid",
                "$expand": "sdkmessageid($select=name)",
                "$filter": "(sdkmessageid/name eq 'CreateMultiple' or sdkmessageid/name eq "
                "'UpdateMultiple') and primaryobjecttypecode eq 'account'",
            },
        )
    )
    assert sorted(row["sdkmessageid"]["name"] for row in body["value"]) == [
        "CreateMultiple",
        "UpdateMultiple",
    ]


def test_system_tables_are_read_only(api):
    response = api.post(api.base + "sdkmessages", json={"name": "Mine"}, timeout=30)
    assert response.status_code == 405


def test_who_am_i(api, cdms_simulator):
    body = ok(get(api, "WhoAmI()"))
    assert body["@odata.context"].endswith("$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
    assert set(body) >= {"UserId", "BusinessUnitId", "OrganizationId"}
    assert ok(get(api, "WhoAmI"))["UserId"] == body["UserId"]


def test_retrieve_total_record_count(api):
    body = ok(
        get(
            api,
            "RetrieveTotalRecordCount(EntityNames=@p1)",
            **{"@p1": "['account','contact']"},
        )
    )
    counts = body["EntityRecordCountCollection"]
    assert counts["Keys"] == ["account", "contact"]
    assert counts["Values"] == [len(ALL), len(PEOPLE)]
    inline = ok(get(api, """RetrieveTotalRecordCount(EntityNames=["email"])"""))
    assert inline["EntityRecordCountCollection"]["Values"] == [0]
    unknown = get(api, "RetrieveTotalRecordCount(EntityNames=['nosuchtable'])")
    assert unknown.status_code == 404
