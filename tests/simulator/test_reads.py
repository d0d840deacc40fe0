"""Reads over real HTTP: ``$select``, ``$orderby``, ``$top``, ``$count``, server-driven paging,
``$expand``, single records, ETags, unknown resources and ``$metadata``."""

from __future__ import annotations

import base64
import itertools
import json
import re
from xml.etree import ElementTree as ET

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdms_api.simulator.seed import demo_key
from tests.seeded import (
    ACCOUNT_PROPERTIES,
    ACME,
    ACME_KEY,
    ALL,
    CAFE,
    CONTOSO,
    ENTITY_SETS,
    FABRIKAM,
    NORTHWIND,
    OBRIEN,
    ORGANIC,
    ROCKET,
    TOKYO,
    WIDGETS,
)

QUERY_SYNTAX = "0x80060888"
NOT_FOUND = "0x80040217"
NO_RESOURCE = "0x8006088a"
ETAG = re.compile(r'W/"\d+"\Z')


WIDGETS_KEY = demo_key(WIDGETS)


def get(api, path: str = "accounts", *, headers: dict | None = None, **params):
    return api.get(api.base + path, params=params, headers=headers or {}, timeout=30)


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]


def prefer(*preferences: str) -> dict:
    return {"Prefer": ",".join(preferences)}


# ---------------------------------------------------------------------------------------------
# $select


@pytest.mark.parametrize(
    ("entity_set", "selection", "key"),
    [
        ("accounts", "name", "accountid"),
        ("accounts", "name,numberofemployees", "accountid"),
        ("accounts", "accountid", "accountid"),
        ("accounts", "_parentaccountid_value,revenue", "accountid"),
        ("contacts", "firstname", "contactid"),
        ("contacts", "lastname,_parentcustomerid_value", "contactid"),
    ],
)
def test_select_returns_the_selected_properties_the_key_and_the_etag(
    api, entity_set, selection, key
):
    body = ok(get(api, entity_set, **{"$select": selection}))
    assert body["@odata.context"] == f"{api.base}$metadata#{entity_set}({selection})"
    assert len(body["value"]) == {"accounts": 10, "contacts": 6}[entity_set]
    expected = {"@odata.etag", key, *selection.split(",")}
    for row in body["value"]:
        assert set(row) == expected
        assert ETAG.match(row["@odata.etag"]), row["@odata.etag"]
    assert len({row[key] for row in body["value"]}) == len(body["value"])


def test_without_select_every_attribute_is_returned(api):
    body = ok(get(api, **{"$filter": "name eq 'Acme Widgets'"}))
    assert body["@odata.context"] == f"{api.base}$metadata#accounts"
    (row,) = body["value"]
    assert set(row) == ACCOUNT_PROPERTIES | {"@odata.etag"}
    assert row["_parentaccountid_value"] == ACME_KEY
    assert row["accountid"] == WIDGETS_KEY
    assert row["@odata.etag"] == f'W/"{row["versionnumber"]}"'


def test_values_are_written_with_their_json_types(api):
    (row,) = ok(get(api, **{"$filter": "name eq 'Acme Widgets'"}))["value"]
    assert row["numberofemployees"] == 85 and isinstance(row["numberofemployees"], int)
    assert row["revenue"] == 4200000.5 and isinstance(row["revenue"], float)
    assert row["new_ukbased"] is True
    assert row["new_foundedon"] == "2003-11-02"
    assert row["industrycode"] == 10
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["createdon"])
    (empty,) = ok(get(api, **{"$filter": "name eq 'Fabrikam Design'"}))["value"]
    nullable = ACCOUNT_PROPERTIES - {"accountid", "name", "industrycode", "versionnumber"}
    nullable -= {"createdon", "modifiedon"}
    assert {name for name in ACCOUNT_PROPERTIES if empty[name] is None} == nullable


@pytest.mark.parametrize(
    "selection", ["foo", "Name", "name,", ",name", "", "parentaccountid", "name,Foo", "name desc"]
)
def test_select_of_an_unknown_property_is_rejected(api, selection):
    assert_error(get(api, **{"$select": selection}), 400, QUERY_SYNTAX)


# ---------------------------------------------------------------------------------------------
# $orderby: several keys, nulls lowest (first ascending, last descending) as in SQL Server


def names(body: dict) -> list[str]:
    return [row["name"] for row in body["value"]]


ORDERINGS = [
    (
        "name",
        [ORGANIC, ACME, WIDGETS, CAFE, CONTOSO, FABRIKAM, NORTHWIND, OBRIEN, ROCKET, TOKYO],
    ),
    (
        "name desc",
        [TOKYO, ROCKET, OBRIEN, NORTHWIND, FABRIKAM, CONTOSO, CAFE, WIDGETS, ACME, ORGANIC],
    ),
    (
        "numberofemployees",
        [FABRIKAM, ROCKET, OBRIEN, CAFE, ORGANIC, CONTOSO, WIDGETS, NORTHWIND, TOKYO, ACME],
    ),
    (
        "numberofemployees asc",
        [FABRIKAM, ROCKET, OBRIEN, CAFE, ORGANIC, CONTOSO, WIDGETS, NORTHWIND, TOKYO, ACME],
    ),
    (
        "numberofemployees desc",
        [ACME, TOKYO, NORTHWIND, WIDGETS, CONTOSO, ORGANIC, CAFE, OBRIEN, ROCKET, FABRIKAM],
    ),
    (
        "new_ukbased desc,name asc",
        [ORGANIC, ACME, WIDGETS, CONTOSO, ROCKET, CAFE, NORTHWIND, OBRIEN, TOKYO, FABRIKAM],
    ),
    (
        "new_ukbased,name desc",
        [FABRIKAM, TOKYO, OBRIEN, NORTHWIND, CAFE, ROCKET, CONTOSO, WIDGETS, ACME, ORGANIC],
    ),
    # Decimal orders as a number (as text, '150000' would come before '25000000')
    (
        "revenue desc,name",
        [NORTHWIND, TOKYO, ACME, WIDGETS, CONTOSO, CAFE, OBRIEN, ROCKET, ORGANIC, FABRIKAM],
    ),
    (
        "revenue,name desc",
        [FABRIKAM, ORGANIC, ROCKET, OBRIEN, CAFE, CONTOSO, WIDGETS, ACME, TOKYO, NORTHWIND],
    ),
    (
        "new_foundedon desc",
        [ROCKET, CAFE, ORGANIC, CONTOSO, WIDGETS, OBRIEN, NORTHWIND, ACME, TOKYO, FABRIKAM],
    ),
    (
        "industrycode desc,numberofemployees desc",
        [TOKYO, NORTHWIND, WIDGETS, FABRIKAM, CAFE, CONTOSO, ACME, ROCKET, OBRIEN, ORGANIC],
    ),
    (
        "_parentaccountid_value desc,name",
        [WIDGETS, ORGANIC, ACME, CAFE, CONTOSO, FABRIKAM, NORTHWIND, OBRIEN, ROCKET, TOKYO],
    ),
]


@pytest.mark.parametrize(("orderby", "expected"), ORDERINGS, ids=[o[0] for o in ORDERINGS])
def test_orderby(api, orderby, expected):
    assert names(ok(get(api, **{"$select": "name", "$orderby": orderby}))) == expected


def test_orderby_with_filter_and_top(api):
    body = ok(
        get(
            api,
            **{
                "$select": "name",
                "$filter": "numberofemployees gt 20",
                "$orderby": "numberofemployees desc",
                "$top": "3",
            },
        )
    )
    assert names(body) == [ACME, TOKYO, NORTHWIND]
    assert "@odata.nextLink" not in body


@pytest.mark.parametrize(
    "orderby",
    ["foo", "Name", "name sideways", "name asc desc", "", "name,", "parentaccountid"],
)
def test_orderby_of_an_unknown_property_or_direction_is_rejected(api, orderby):
    assert_error(get(api, **{"$orderby": orderby}), 400, QUERY_SYNTAX)


# ---------------------------------------------------------------------------------------------
# $top and $count


@pytest.mark.parametrize("top", [1, 3, 10, 50])
def test_top(api, top):
    body = ok(get(api, **{"$select": "name", "$orderby": "name", "$top": str(top)}))
    assert names(body) == ORDERINGS[0][1][:top]
    assert "@odata.nextLink" not in body


@pytest.mark.parametrize("top", ["-1", "abc", "1.5", "", "99999999999999999999", "²", "1e3"])
def test_invalid_top_is_rejected(api, top):
    assert_error(get(api, **{"$top": top}), 400, QUERY_SYNTAX)


@pytest.mark.parametrize(
    ("params", "count", "rows"),
    [
        ({"$count": "true"}, 10, 10),
        ({"$count": "true", "$filter": "numberofemployees gt 100"}, 3, 3),
        ({"$count": "true", "$filter": "name eq 'nobody'"}, 0, 0),
        ({"$count": "true", "$filter": "name eq @p", "@p": "'Acme Holdings'"}, 1, 1),
    ],
)
def test_count(api, params, count, rows):
    body = ok(get(api, **{"$select": "name", **params}))
    assert body["@odata.count"] == count
    assert len(body["value"]) == rows


def test_count_false_or_absent_adds_no_count(api):
    assert "@odata.count" not in ok(get(api, **{"$count": "false"}))
    assert "@odata.count" not in ok(get(api))


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_invalid_count_is_rejected(api, value):
    assert_error(get(api, **{"$count": value}), 400, QUERY_SYNTAX)


def test_count_is_of_all_matching_rows_whatever_the_page_size(api):
    body = ok(
        get(api, headers=prefer("odata.maxpagesize=3"), **{"$count": "true", "$select": "name"})
    )
    assert body["@odata.count"] == 10
    assert len(body["value"]) == 3


def test_count_annotations_below_the_limit(api):
    headers = prefer('odata.include-annotations="*"')
    body = ok(get(api, headers=headers, **{"$count": "true", "$select": "name"}))
    assert body["@odata.count"] == 10
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 10
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False


def test_count_annotations_without_count_say_nothing_was_counted(api):
    """Without ``$count=true`` the annotations asked for are there: ``totalrecordcount`` is
    -1, as Dataverse documents, and the limit was not exceeded."""
    headers = prefer('odata.include-annotations="*"')
    body = ok(get(api, headers=headers, **{"$select": "name"}))
    assert "@odata.count" not in body
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == -1
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False
    assert "@Microsoft.Dynamics.CRM.totalrecordcount" not in ok(get(api, **{"$select": "name"}))


def test_count_with_a_page_of_one_record(api):
    """The count ``CDMSClient.exact_count`` asks for: every match counted, one record of its
    key alone in the answer, and whether the count stopped at the limit."""
    headers = prefer(
        "odata.maxpagesize=1,"
        'odata.include-annotations="Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"'
    )
    params = {"$select": "accountid", "$count": "true", "$filter": "numberofemployees gt 10"}
    body = ok(get(api, headers=headers, **params))
    assert body["@odata.count"] == 8
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False
    assert "@Microsoft.Dynamics.CRM.totalrecordcount" not in body
    [record] = body["value"]
    assert set(record) == {"@odata.etag", "accountid"}


@pytest.mark.parametrize(
    ("entity_set", "params", "expected"),
    [
        ("accounts", {}, "10"),
        ("contacts", {}, "6"),
        ("accounts", {"$filter": "numberofemployees gt 100"}, "3"),
    ],
)
def test_count_segment(api, entity_set, params, expected):
    response = get(api, f"{entity_set}/$count", **params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == expected


# ---------------------------------------------------------------------------------------------
# unsupported and malformed options


@pytest.mark.parametrize(
    "params",
    [
        {"$skip": "1"},
        {"$foo": "1"},
        {"$search": "acme"},
        {"$format": "json"},
        {"$skiptoken": "garbage"},
        {"$skiptoken": "%%%"},
        {"$skiptoken": base64.urlsafe_b64encode(b"[1, 2]").decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": 1}').decode()},
        # well-formed tokens that do not fit the query: wrong number of keys, odd values
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [1, 2, 3]}').decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [{"a": 1}]}').decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [true]}').decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [1e999]}').decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [NaN]}').decode()},
        {"$skiptoken": base64.urlsafe_b64encode(b'{"after": [99999999999999999999]}').decode()},
        {"$deltatoken": "x"},
        {"$deltatoken": "99999999999999999999999"},
        {"$expand": "parentaccountid", "$deltatoken": "1"},
    ],
)
def test_unsupported_or_malformed_option_is_rejected(api, params):
    assert_error(get(api, **params), 400, QUERY_SYNTAX)


def test_a_skiptoken_of_another_ordering_is_rejected(api):
    first = ok(get(api, headers=prefer("odata.maxpagesize=2"), **{"$orderby": "name"}))
    token = re.search(r"\$skiptoken=([^&]+)", first["@odata.nextLink"]).group(1)
    response = get(api, **{"$orderby": "name,numberofemployees", "$skiptoken": token})
    assert_error(response, 400, QUERY_SYNTAX)


# ---------------------------------------------------------------------------------------------
# server-driven paging: Prefer: odata.maxpagesize and @odata.nextLink


def follow(api, first_params: dict, page_size: int | None, path: str = "accounts") -> list[dict]:
    """Every page of a query, following ``@odata.nextLink`` (re-sending the Prefer header, as
    a client must); checks the page sizes and the ``Preference-Applied`` header."""
    headers = prefer(f"odata.maxpagesize={page_size}") if page_size else {}
    response = get(api, path, headers=headers, **first_params)
    pages = []
    while True:
        body = ok(response)
        pages.append(body)
        if page_size:
            assert response.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
            assert len(body["value"]) <= page_size
        else:
            assert "Preference-Applied" not in response.headers
        link = body.get("@odata.nextLink")
        if link is None:
            break
        assert len(body["value"]) == page_size  # only the last page may be short
        assert link.startswith(api.base)
        response = api.get(link, headers=headers, timeout=30)
        assert len(pages) < 100
    return pages


def rows_of(pages: list[dict]) -> list[dict]:
    return [row for page in pages for row in page["value"]]


@pytest.mark.parametrize("page_size", [1, 3, 4, 9, 10, 11])
def test_paging_returns_every_record_once_in_order(api, page_size):
    params = {"$select": "name", "$orderby": "numberofemployees desc"}
    pages = follow(api, params, page_size)
    assert [names(page) for page in pages] == [
        ORDERINGS[4][1][i : i + page_size] for i in range(0, 10, page_size)
    ]


@pytest.mark.parametrize(("orderby", "expected"), ORDERINGS, ids=[o[0] for o in ORDERINGS])
def test_paging_follows_every_ordering(api, orderby, expected):
    pages = follow(api, {"$select": "name", "$orderby": orderby}, 3)
    assert [names(page) for page in pages] == [expected[i : i + 3] for i in range(0, 10, 3)]


def test_paging_without_orderby_goes_by_key(api):
    pages = follow(api, {"$select": "accountid"}, 4)
    keys = [row["accountid"] for row in rows_of(pages)]
    assert keys == sorted(demo_key(name) for name in ALL)
    assert [len(page["value"]) for page in pages] == [4, 4, 2]


def test_next_link_keeps_the_query(api):
    params = {
        "$select": "name",
        "$filter": "name ne @p and numberofemployees ne null",
        "@p": "'Acme Holdings'",
        "$orderby": "name desc",
        "$count": "true",
    }
    pages = follow(api, params, 2)
    assert [len(page["value"]) for page in pages] == [2, 2, 2, 2]
    rows = rows_of(pages)
    assert [row["name"] for row in rows] == [
        TOKYO,
        ROCKET,
        OBRIEN,
        NORTHWIND,
        CONTOSO,
        CAFE,
        WIDGETS,
        ORGANIC,
    ]
    assert all(set(row) == {"@odata.etag", "name", "accountid"} for row in rows)
    assert all(page["@odata.count"] == 8 for page in pages)
    assert all(page["@odata.context"] == f"{api.base}$metadata#accounts(name)" for page in pages)


def test_top_is_ignored_when_a_max_page_size_is_given(api):
    pages = follow(api, {"$select": "name", "$orderby": "name", "$top": "2"}, 3)
    assert [len(page["value"]) for page in pages] == [3, 3, 3, 1]
    assert [row["name"] for row in rows_of(pages)] == ORDERINGS[0][1]


def test_no_next_link_without_more_rows(api):
    response = get(api, headers=prefer("odata.maxpagesize=10"), **{"$select": "name"})
    body = ok(response)
    assert len(body["value"]) == 10
    assert "@odata.nextLink" not in body
    assert response.headers["Preference-Applied"] == "odata.maxpagesize=10"


@pytest.mark.parametrize("value", ["0", "-1", "abc", "²"])
def test_an_invalid_max_page_size_is_ignored(api, value):
    response = get(api, headers=prefer(f"odata.maxpagesize={value}"), **{"$select": "name"})
    body = ok(response)
    assert len(body["value"]) == 10
    assert "@odata.nextLink" not in body
    assert "Preference-Applied" not in response.headers


CONTACT_LASTNAMES = ["Zed", "alpha", None, "Alpha", "beta", None, "ALPHA"]
CONTACT_BIRTHDATES = [None, "1990-01-01", "1980-05-05", None, "1990-01-01"]


@pytest.fixture
def many_contacts(cdms_simulator):
    """33 contacts: 6 from the seed and 27 with repeated and null last names and birthdates."""
    cdms_simulator.load(
        "contacts",
        [
            {
                "firstname": f"P{i:02d}",
                "lastname": CONTACT_LASTNAMES[i % len(CONTACT_LASTNAMES)],
                "birthdate": CONTACT_BIRTHDATES[i % len(CONTACT_BIRTHDATES)],
            }
            for i in range(27)
        ],
    )
    return 33


def sort_value(value):
    """Nulls lowest, strings case-insensitively (the demo values are ASCII)."""
    if value is None:
        return (0, "")
    return (1, value.lower() if isinstance(value, str) else value)


def in_order(rows: list[dict], orderby: str) -> bool:
    keys = []
    for item in orderby.split(","):
        name, _, direction = item.strip().partition(" ")
        keys.append((name, direction == "desc"))
    for before, after in itertools.pairwise(rows):
        for name, descending in keys:
            a, b = sort_value(before[name]), sort_value(after[name])
            if a == b:
                continue
            if (a > b) != descending:
                return False
            break
    return True


@pytest.mark.parametrize(
    "orderby",
    [
        "lastname",
        "lastname desc",
        "lastname desc,birthdate",
        "birthdate desc,lastname asc",
        "birthdate,lastname desc",
        "_parentcustomerid_value",
        "_parentcustomerid_value desc,birthdate desc",
    ],
)
@pytest.mark.parametrize("page_size", [4, 7])
def test_paging_over_nulls_and_duplicates(api, many_contacts, orderby, page_size):
    params = {"$select": "firstname,lastname,birthdate,_parentcustomerid_value"}
    params["$orderby"] = orderby
    unpaged = ok(get(api, "contacts", **params))["value"]
    assert len(unpaged) == many_contacts
    assert in_order(unpaged, orderby), [
        (r["lastname"], r["birthdate"], r["_parentcustomerid_value"]) for r in unpaged
    ]
    rows = rows_of(follow(api, params, page_size, "contacts"))
    keys = [row["contactid"] for row in rows]
    assert len(keys) == len(set(keys)) == many_contacts
    assert keys == [row["contactid"] for row in unpaged]


# ---------------------------------------------------------------------------------------------
# more than 5,000 rows: page size and count are capped


@pytest.mark.slow
def test_five_thousand_row_limits(api, cdms_simulator):
    cdms_simulator.load("accounts", [{"name": f"Bulk {i:05d}"} for i in range(5001)])
    total = 10 + 5001

    # the default page is 5,000 rows, and so is a larger requested page
    for headers in ({}, prefer("odata.maxpagesize=6000")):
        response = get(api, headers=headers, **{"$select": "name"})
        body = ok(response)
        assert len(body["value"]) == 5000
        assert "@odata.nextLink" in body
        rest = ok(api.get(body["@odata.nextLink"], headers=headers, timeout=30))
        assert len(rest["value"]) == total - 5000
        assert "@odata.nextLink" not in rest
        keys = {row["accountid"] for row in body["value"] + rest["value"]}
        assert len(keys) == total

    # @odata.count stops at 5,000; the annotations tell whether the limit was passed
    annotations = prefer('odata.include-annotations="*"')
    body = ok(get(api, headers=annotations, **{"$select": "name", "$count": "true"}))
    assert body["@odata.count"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is True

    exactly = {
        "$select": "name",
        "$count": "true",
        "$filter": "startswith(name,'Bulk ') and name ne 'Bulk 00000'",
    }
    body = ok(get(api, headers=annotations, **exactly))
    assert body["@odata.count"] == 5000
    assert body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] is False
    assert "@odata.nextLink" not in body

    only_count = prefer('odata.include-annotations="Microsoft.Dynamics.CRM.totalrecordcount"')
    body = ok(get(api, headers=only_count, **{"$select": "name", "$count": "true"}))
    assert body["@Microsoft.Dynamics.CRM.totalrecordcount"] == 5000
    assert "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded" not in body

    assert get(api, "accounts/$count").text == "5000"


# ---------------------------------------------------------------------------------------------
# $expand of single-valued navigation properties


def test_expand_with_select(api):
    body = ok(
        get(
            api,
            **{"$select": "name", "$expand": "parentaccountid($select=name)", "$orderby": "name"},
        )
    )
    assert body["@odata.context"] == f"{api.base}$metadata#accounts(name,parentaccountid(name))"
    parents = {row["name"]: row["parentaccountid"] for row in body["value"]}
    assert set(parents) == ALL
    assert {name for name, parent in parents.items() if parent is not None} == {WIDGETS}
    parent = parents[WIDGETS]
    assert set(parent) == {"@odata.etag", "name", "accountid"}
    assert parent["name"] == ACME and parent["accountid"] == ACME_KEY
    assert ETAG.match(parent["@odata.etag"])


def test_expand_without_select_returns_the_whole_record(api):
    body = ok(get(api, **{"$filter": "name eq 'Acme Widgets'", "$expand": "parentaccountid"}))
    (row,) = body["value"]
    assert set(row["parentaccountid"]) == ACCOUNT_PROPERTIES | {"@odata.etag"}
    assert row["parentaccountid"]["numberofemployees"] == 1200
    assert row["_parentaccountid_value"] == ACME_KEY


def test_expand_on_contacts(api):
    body = ok(
        get(
            api,
            "contacts",
            **{
                "$select": "firstname",
                "$expand": "parentcustomerid_account($select=name,numberofemployees)",
            },
        )
    )
    accounts = {
        row["firstname"]: (row["parentcustomerid_account"] or {}).get("name")
        for row in body["value"]
    }
    assert accounts == {
        "Ada": ACME,
        "Alan": WIDGETS,
        "Seán": OBRIEN,
        "Grace": CONTOSO,
        "Katherine": None,
        "Smith": NORTHWIND,
    }


def test_expand_is_applied_on_every_page(api):
    params = {"$select": "name", "$expand": "parentaccountid($select=name)", "$orderby": "name"}
    rows = rows_of(follow(api, params, 3))
    assert [row["parentaccountid"] is not None for row in rows] == [
        name == WIDGETS for name in ORDERINGS[0][1]
    ]


@pytest.mark.parametrize(
    "expand",
    [
        "name",
        "foo",
        "Parentaccountid",
        "_parentaccountid_value",
        "parentaccountid($select=foo)",
        "parentaccountid($select=)",
        "parentaccountid(",
        "parentaccountid/name",
    ],
)
def test_expand_of_a_non_navigation_property_is_rejected(api, expand):
    assert_error(get(api, **{"$expand": expand}), 400, QUERY_SYNTAX)


# ---------------------------------------------------------------------------------------------
# one record


def test_read_one_record(api):
    response = get(api, f"accounts({ACME_KEY})")
    body = ok(response)
    assert body["@odata.context"] == f"{api.base}$metadata#accounts/$entity"
    assert body["name"] == ACME and body["accountid"] == ACME_KEY
    assert set(body) == ACCOUNT_PROPERTIES | {"@odata.etag", "@odata.context"}
    assert ETAG.match(body["@odata.etag"])
    assert response.headers["ETag"] == body["@odata.etag"]
    assert response.headers["OData-Version"] == "4.0"


def test_read_one_record_with_select_and_expand(api):
    params = {"$select": "name", "$expand": "parentaccountid($select=name)"}
    body = ok(get(api, f"accounts({WIDGETS_KEY})", **params))
    assert body["@odata.context"].endswith("$metadata#accounts(name,parentaccountid(name))/$entity")
    assert set(body) == {"@odata.context", "@odata.etag", "name", "accountid", "parentaccountid"}
    assert body["parentaccountid"]["name"] == ACME


def test_the_key_in_the_url_is_case_insensitive(api):
    body = ok(get(api, f"accounts({ACME_KEY.upper()})", **{"$select": "name"}))
    assert body["accountid"] == ACME_KEY


def test_missing_record_is_404(api):
    response = get(api, "accounts(00000000-0000-0000-0000-000000000001)")
    assert_error(response, 404, NOT_FOUND)


@pytest.mark.parametrize("key", ["xyz", "1", f"'{ACME_KEY}'", f"{ACME_KEY}x"])
def test_malformed_key_is_400(api, key):
    assert_error(get(api, f"accounts({key})"), 400, QUERY_SYNTAX)


@pytest.mark.parametrize(
    "params", [{"$select": "foo"}, {"$filter": "name eq 'x'"}, {"$orderby": "name"}]
)
def test_bad_options_on_one_record_are_rejected(api, params):
    assert_error(get(api, f"accounts({ACME_KEY})", **params), 400, QUERY_SYNTAX)


def test_if_none_match_with_the_current_etag_is_304(api):
    current = ok(get(api, f"accounts({ACME_KEY})"))["@odata.etag"]
    response = get(api, f"accounts({ACME_KEY})", headers={"If-None-Match": current})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == current

    stale = get(api, f"accounts({ACME_KEY})", headers={"If-None-Match": 'W/"999999"'})
    assert ok(stale)["@odata.etag"] == current


@pytest.mark.parametrize(
    "path",
    ["Accounts", "account", "accountz", f"Accounts({ACME_KEY})", "ACCOUNTS/$count", "accounts/foo"],
)
def test_unknown_entity_set_is_404(api, path):
    assert_error(get(api, path), 404, NO_RESOURCE)


# ---------------------------------------------------------------------------------------------
# $metadata

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"


def test_metadata_is_csdl(api):
    response = get(api, "$metadata")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "{http://docs.oasis-open.org/odata/ns/edmx}Edmx"
    (schema,) = root.iter(f"{EDM}Schema")
    assert schema.get("Namespace") == "Microsoft.Dynamics.CRM"
    types = {entity.get("Name"): entity for entity in schema.iter(f"{EDM}EntityType")}
    assert {"account", "contact"} <= set(types)

    account = types["account"]
    assert [ref.get("Name") for ref in account.iter(f"{EDM}PropertyRef")] == ["accountid"]
    properties = {p.get("Name"): p for p in account.findall(f"{EDM}Property")}
    assert set(properties) == ACCOUNT_PROPERTIES
    assert {name: properties[name].get("Type") for name in properties} == {
        "accountid": "Edm.Guid",
        "name": "Edm.String",
        "accountnumber": "Edm.String",
        "websiteurl": "Edm.String",
        "telephone1": "Edm.String",
        "numberofemployees": "Edm.Int32",
        "revenue": "Edm.Decimal",
        "new_ukbased": "Edm.Boolean",
        "new_foundedon": "Edm.Date",
        "industrycode": "Edm.Int32",
        "_parentaccountid_value": "Edm.Guid",
        "createdon": "Edm.DateTimeOffset",
        "overriddencreatedon": "Edm.DateTimeOffset",
        "modifiedon": "Edm.DateTimeOffset",
        "versionnumber": "Edm.Int64",
    }
    assert properties["name"].get("MaxLength") == "160"
    navigation = {n.get("Name"): n.get("Type") for n in account.findall(f"{EDM}NavigationProperty")}
    assert navigation == {
        "parentaccountid": "mscrm.account",
        "account_parent_account": "Collection(mscrm.account)",
        "contact_customer_accounts": "Collection(mscrm.contact)",
        "Account_Emails": "Collection(mscrm.email)",
        "Account_CustomerAddress": "Collection(mscrm.customeraddress)",
    }

    contact = types["contact"]
    contact_navigation = {
        n.get("Name"): n.get("Type") for n in contact.findall(f"{EDM}NavigationProperty")
    }
    assert contact_navigation == {
        "parentcustomerid_account": "mscrm.account",
        "parentcustomerid_contact": "mscrm.contact",
        "contact_customer_contacts": "Collection(mscrm.contact)",
        "Contact_Emails": "Collection(mscrm.email)",
        "Contact_CustomerAddress": "Collection(mscrm.customeraddress)",
    }
    assert "_parentcustomerid_value" in {p.get("Name") for p in contact.findall(f"{EDM}Property")}

    (container,) = schema.iter(f"{EDM}EntityContainer")
    sets = {s.get("Name"): s.get("EntityType") for s in container.findall(f"{EDM}EntitySet")}
    assert sets == {
        "accounts": "Microsoft.Dynamics.CRM.account",
        "contacts": "Microsoft.Dynamics.CRM.contact",
        "emails": "Microsoft.Dynamics.CRM.email",
        "customeraddresses": "Microsoft.Dynamics.CRM.customeraddress",
        "new_samples": "Microsoft.Dynamics.CRM.new_sample",
        "sdkmessages": "Microsoft.Dynamics.CRM.sdkmessage",
        "sdkmessagefilters": "Microsoft.Dynamics.CRM.sdkmessagefilter",
    }


def test_service_document(api):
    body = ok(get(api, ""))
    assert body["@odata.context"] == f"{api.base}$metadata"
    assert {(s["name"], s["kind"], s["url"]) for s in body["value"]} == {
        (name, "EntitySet", name) for name in ENTITY_SETS
    }


def test_json_body_of_a_read(api):
    response = get(api, **{"$select": "name", "$top": "1"})
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["OData-Version"] == "4.0"
    assert json.loads(response.content)["value"][0]["name"]


# ---------------------------------------------------------------------------------------------
# fuzzing the other options: a 400 (or 501 for what the simulator does not implement), never
# a server error

OPTION_TOKENS = [
    "name", "accountid", "parentaccountid", "_parentaccountid_value", "contact_customer_accounts",
    "(", ")", "$select=", "$filter=", "$top=", ";", ",", "/", " ", "asc", "desc", "=", "'", "@p",
    "1", "-1", "Name", "é", "",
]  # fmt: skip


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(["$select", "$orderby", "$expand", "$top", "$count", "$skiptoken", "@p"]),
    st.one_of(
        st.text(max_size=20), st.lists(st.sampled_from(OPTION_TOKENS), max_size=8).map("".join)
    ),
    st.booleans(),
)
def test_fuzzed_options_are_never_a_server_error(api, option, value, one_record):
    path = f"accounts({ACME_KEY})" if one_record else "accounts"
    params = {option: value, "$filter": "name ne @p"} if option == "@p" else {option: value}
    if one_record:
        params.pop("$filter", None)
    response = get(api, path, **params)
    assert response.status_code in (200, 400, 501), (option, value, response.text[:300])
    if response.status_code != 200:
        assert response.json()["error"]["code"].startswith("0x8")
