"""The remote request a queryset makes, exactly: ``qs.cdms_query`` shows it without making it.

The translator walks the queryset's resolved ``where`` tree; what Dataverse can express is
rendered as is, what it cannot is relaxed by polarity (TRUE under an even number of
negations, FALSE under an odd one), so the remote read is always a superset of the true
matches. ``test_reads`` shows the same queries against the remote; this module pins the text.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.db.models import Count, F, Q

from cdms_api.errors import CDMSNotSupported
from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation
from migrator.testing import assertNumRemoteCalls
from tests.secondapp.models import Sample
from tests.seeded import ACME_KEY, ROCKET

orgs = Organisation.objects
people = Contact.objects
ROCKET_KEY = demo_key(ROCKET)
ACCOUNT_SELECT = (
    "accountid,modifiedon,name,websiteurl,telephone1,numberofemployees,revenue,new_ukbased,"
    "new_foundedon,_parentaccountid_value"
)


#: The local database sorts nulls lowest, as Dataverse does (SQLite; not PostgreSQL).
NULLS_AS_REMOTE = not connection.features.nulls_order_largest


def request(query) -> dict[str, str]:
    """The query options of the last (main) request a queryset would make; no request made."""
    with assertNumRemoteCalls(0):
        text = query.cdms_query
    (main,) = [line for line in text.splitlines() if line.startswith("GET ")]
    url = main.split(" ", 1)[1]
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def remote_filter(query) -> str:
    return request(query)["$filter"]


@pytest.fixture
def acme() -> Organisation:
    """A local row synced from the remote: its id stands for its remote key in filters."""
    return Organisation.objects.skip_cdms().create(name="Acme Holdings", cdms_pk=ACME_KEY)


FILTERS = [
    # Lookups
    (lambda: orgs.filter(employees__exact=45), "numberofemployees eq 45"),
    (lambda: orgs.filter(employees=None), "numberofemployees eq null"),
    (lambda: orgs.filter(name="Acme Widgets"), "name eq 'Acme Widgets'"),
    (lambda: orgs.filter(name="O'Brien & Sons"), "name eq 'O''Brien & Sons'"),
    # (values whose letters fold alike everywhere: see test_case_folding_of_the_local_database)
    (lambda: orgs.filter(name__iexact="acme group"), "name eq 'acme group'"),
    (lambda: orgs.filter(name__contains="Acme"), "contains(name,'Acme')"),
    (lambda: orgs.filter(name__icontains="acme"), "contains(name,'acme')"),
    (lambda: orgs.filter(name__contains="a_b[c]"), "contains(name,'a[_]b[[]c]')"),
    (lambda: orgs.filter(name__startswith="100%"), "startswith(name,'100[%]')"),
    (lambda: orgs.filter(name__istartswith="acme"), "startswith(name,'acme')"),
    (lambda: orgs.filter(name__endswith="Labs"), "endswith(name,'Labs')"),
    (lambda: orgs.filter(name__iendswith="lab"), "endswith(name,'lab')"),
    (
        lambda: orgs.filter(employees__in=[12, 23]),
        "Microsoft.Dynamics.CRM.In(PropertyName='numberofemployees',PropertyValues=['12','23'])",
    ),
    (
        lambda: orgs.filter(name__in=["a", "b'c"]),
        "Microsoft.Dynamics.CRM.In(PropertyName='name',PropertyValues=['a','b''c'])",
    ),
    (lambda: orgs.filter(employees__gt=300), "numberofemployees gt 300"),
    (lambda: orgs.filter(employees__gte=300), "numberofemployees ge 300"),
    (lambda: orgs.filter(employees__lt=23), "numberofemployees lt 23"),
    (lambda: orgs.filter(employees__lte=23), "numberofemployees le 23"),
    (lambda: orgs.filter(revenue__gt=Decimal("1E+6")), "revenue gt 1000000"),
    (lambda: orgs.filter(uk_based=True), "new_ukbased eq true"),
    (lambda: orgs.filter(founded_on=dt.date(2008, 2, 29)), "new_foundedon eq 2008-02-29"),
    (
        lambda: orgs.filter(employees__range=(40, 85)),
        "numberofemployees ge 40 and numberofemployees le 85",
    ),
    (
        lambda: orgs.filter(founded_on__range=(dt.date(1990, 1, 1), dt.date(1999, 12, 31))),
        "new_foundedon ge 1990-01-01 and new_foundedon le 1999-12-31",
    ),
    (
        lambda: orgs.filter(founded_on__year=2003),
        "new_foundedon ge 2003-01-01 and new_foundedon lt 2004-01-01",
    ),
    (lambda: orgs.filter(founded_on__year__gt=2000), "new_foundedon ge 2001-01-01"),
    (lambda: orgs.filter(founded_on__year__gte=2000), "new_foundedon ge 2000-01-01"),
    (lambda: orgs.filter(founded_on__year__lt=2000), "new_foundedon lt 2000-01-01"),
    (lambda: orgs.filter(founded_on__year__lte=2000), "new_foundedon lt 2001-01-01"),
    (lambda: orgs.filter(employees__isnull=True), "numberofemployees eq null"),
    (lambda: orgs.filter(employees__isnull=False), "numberofemployees ne null"),
    # a local "" is a remote null (or '')
    (lambda: orgs.filter(website=""), "websiteurl eq null or websiteurl eq ''"),
    # the remote modifiedon: cdms_modified, and the date of a date-time in the current zone
    (
        lambda: orgs.filter(cdms_modified__gte=dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)),
        "modifiedon ge 2024-05-01T12:00:00Z",
    ),
    (
        lambda: orgs.filter(cdms_modified__date=dt.date(2024, 5, 1)),
        "modifiedon ge 2024-05-01T00:00:00Z and modifiedon lt 2024-05-02T00:00:00Z",
    ),
    (
        lambda: orgs.filter(cdms_modified__year=2024),
        "modifiedon ge 2024-01-01T00:00:00Z and modifiedon lt 2025-01-01T00:00:00Z",
    ),
    # keys
    (lambda: orgs.filter(cdms_pk=ACME_KEY), f"accountid eq {ACME_KEY}"),
    (
        lambda: orgs.filter(cdms_pk__in=[ACME_KEY, ROCKET_KEY]),
        f"Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=['{ACME_KEY}',"
        f"'{ROCKET_KEY}'])",
    ),
    # across foreign keys
    (
        lambda: people.filter(organisation__isnull=True),
        "_parentcustomerid_value eq null or parentcustomerid_contact/contactid ne null",
    ),
    (lambda: orgs.filter(parent__isnull=False), "_parentaccountid_value ne null"),
    (
        lambda: people.filter(organisation__name="Acme Holdings"),
        "parentcustomerid_account/name eq 'Acme Holdings'",
    ),
    (lambda: orgs.filter(parent__employees__gt=1000), "parentaccountid/numberofemployees gt 1000"),
    (
        lambda: people.filter(organisation__parent__name="Acme"),
        "parentcustomerid_account/parentaccountid/name eq 'Acme'",
    ),
    (
        lambda: people.filter(organisation__employees__in=[1, 2]),
        "parentcustomerid_account/numberofemployees eq 1 or "
        "parentcustomerid_account/numberofemployees eq 2",
    ),
    # two fields of a record: texts that read "" locally may both be null remotely
    (
        lambda: people.filter(first_name=F("last_name")),
        "firstname eq lastname or ((firstname eq null or firstname eq '') and "
        "(lastname eq null or lastname eq ''))",
    ),
    # Filtering
    (lambda: orgs.filter(Q(uk_based=True)), "new_ukbased eq true"),
    (
        lambda: orgs.filter(uk_based=True, employees__lt=50),  # Django sorts the keywords
        "numberofemployees lt 50 and new_ukbased eq true",
    ),
    (
        lambda: orgs.filter(Q(uk_based=True) & Q(employees__lt=50)),
        "new_ukbased eq true and numberofemployees lt 50",
    ),
    (
        lambda: orgs.filter(Q(uk_based=False) | Q(employees__lt=10)),
        "new_ukbased eq false or numberofemployees lt 10",
    ),
    (
        lambda: orgs.filter(uk_based=True).filter(employees__gte=45),
        "new_ukbased eq true and numberofemployees ge 45",
    ),
    (
        lambda: orgs.filter(
            Q(Q(uk_based=True) & Q(employees__gte=40)) & Q(founded_on__year__gte=2000)
        ),
        "new_ukbased eq true and numberofemployees ge 40 and new_foundedon ge 2000-01-01",
    ),
    # exclude: a null property makes "x eq 5" unknown, and "not unknown" drops the record
    # remotely while Django keeps the row; "and x ne null" keeps it on both sides
    (
        lambda: orgs.exclude(employees=5),
        "not (numberofemployees eq 5 and numberofemployees ne null)",
    ),
    (lambda: orgs.exclude(uk_based=True), "not (new_ukbased eq true and new_ukbased ne null)"),
    (
        lambda: orgs.exclude(uk_based=True, employees__lt=50),
        "not (numberofemployees lt 50 and numberofemployees ne null and new_ukbased eq true and "
        "new_ukbased ne null)",
    ),
    (
        lambda: orgs.exclude(uk_based=True).exclude(employees__lt=50),
        "not (new_ukbased eq true and new_ukbased ne null) and "
        "not (numberofemployees lt 50 and numberofemployees ne null)",
    ),
    (
        lambda: orgs.exclude(Q(uk_based=True) | Q(employees__lt=50)),
        "not ((new_ukbased eq true and new_ukbased ne null) or "
        "(numberofemployees lt 50 and numberofemployees ne null))",
    ),
    (
        lambda: orgs.exclude(Q(uk_based=True) & Q(employees__lt=50)),
        "not (new_ukbased eq true and new_ukbased ne null and numberofemployees lt 50 and "
        "numberofemployees ne null)",
    ),
    (
        lambda: orgs.filter(uk_based=True).exclude(employees__lt=50),
        "new_ukbased eq true and not (numberofemployees lt 50 and numberofemployees ne null)",
    ),
    (
        lambda: orgs.filter(Q(uk_based=True) | Q(employees__gte=300)).exclude(
            Q(founded_on__year__lt=2000) & Q(employees__gte=100)
        ),
        "(new_ukbased eq true or numberofemployees ge 300) and not (new_foundedon lt "
        "2000-01-01 and new_foundedon ne null and numberofemployees ge 100 and "
        "numberofemployees ne null)",
    ),
    # relaxed by polarity: TRUE where it is asserted, FALSE where it is negated
    (lambda: orgs.filter(employees__gte=0, founded_on__month=3), "numberofemployees ge 0"),
    (lambda: orgs.filter(uk_based=True, name__regex="^A"), "new_ukbased eq true"),
    (
        lambda: orgs.exclude(Q(employees=1) | Q(founded_on__month=3)),
        "not (numberofemployees eq 1 and numberofemployees ne null)",
    ),
    (
        lambda: orgs.filter(uk_based=True).exclude(Q(employees=1) & Q(founded_on__month=3)),
        "new_ukbased eq true",
    ),
    (
        lambda: orgs.filter(Q(employees=1) | Q(founded_on__month=3), uk_based=True),
        "new_ukbased eq true",
    ),
    (lambda: orgs.filter(uk_based=True).exclude(name="Acme"), "new_ukbased eq true"),
]


@pytest.mark.parametrize(("query", "expected"), FILTERS)
def test_filter(query, expected):
    assert remote_filter(query()) == expected


def test_select_is_the_mapped_properties():
    assert request(orgs.filter(uk_based=True))["$select"] == ACCOUNT_SELECT
    assert "$filter" not in request(orgs.all())


def test_local_ids_become_remote_keys(acme):
    assert remote_filter(orgs.filter(pk=acme.pk)) == f"accountid eq {ACME_KEY}"
    assert remote_filter(orgs.filter(parent=acme)) == f"_parentaccountid_value eq {ACME_KEY}"
    assert remote_filter(people.filter(organisation_id=acme.pk)) == (
        f"_parentcustomerid_value eq {ACME_KEY}"
    )
    assert remote_filter(orgs.filter(pk__in=[acme.pk, 999])) == (
        f"Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=['{ACME_KEY}'])"
    )


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(lambda: orgs.none(), id="none"),
        pytest.param(lambda: orgs.filter(uk_based=True).none(), id="filter-none"),
        pytest.param(lambda: orgs.filter(employees__in=[]), id="in-nothing"),
        pytest.param(lambda: orgs.filter(pk=12345), id="local-only-row"),
    ],
)
def test_nothing_to_read(query):
    with assertNumRemoteCalls(0):
        assert query().cdms_query == "(no request: nothing can match on accounts)"


@pytest.mark.parametrize(
    ("query", "orderby", "top"),
    [
        (lambda: orgs.order_by("name"), "name", None),
        (lambda: orgs.order_by("-employees"), "numberofemployees desc", None),
        (
            lambda: orgs.order_by("uk_based", "-employees"),
            "new_ukbased,numberofemployees desc",
            None,
        ),
        # a local-only field orders locally only
        (lambda: orgs.order_by("created", "name"), "name", None),
        # no order: any rows will do, the remote's top ones too
        (lambda: orgs.filter(employees__gte=100)[:2], None, "2"),
        (lambda: orgs.filter(employees__gte=100)[5:10], None, "10"),
        # the remote orders text differently from the local database
        (lambda: orgs.order_by("name")[:3], "name", None),
        # a relaxed or case-insensitive filter returns a superset: its top is not the top
        (lambda: orgs.filter(founded_on__month=3, employees__gte=0)[:1], None, None),
        (lambda: orgs.filter(name="Acme")[:1], None, None),
    ],
)
def test_order_and_top(query, orderby, top):
    options = request(query())
    assert options.get("$orderby") == orderby
    assert options.get("$top") == top


@pytest.mark.parametrize("order", ["employees", "-employees"])
def test_order_by_a_nullable_field_reads_the_first_records(order):
    """Dataverse sorts null lowest, as SQLite does: one read of the first records, a null
    there stored like any value (no condition keeps it out). PostgreSQL sorts it highest:
    the records with a value and those with a null, in its order, each read's first ones."""
    descending = order.startswith("-")
    with assertNumRemoteCalls(0):
        lines = orgs.order_by(order)[:3].cdms_query.splitlines()
    reads = [{k: v[0] for k, v in parse_qs(urlsplit(line).query).items()} for line in lines]
    assert {(r["$orderby"], r["$top"]) for r in reads} == {
        ("numberofemployees" + (" desc" if descending else ""), "3")
    }
    halves = ["numberofemployees ne null", "numberofemployees eq null"]
    expected = [None] if NULLS_AS_REMOTE else halves
    assert [r.get("$filter") for r in reads] == expected


@pytest.mark.parametrize(
    ("order", "halved"),
    [
        (("day", "-rank"), True),  # by day, nulls at one end; by rank within each half
        (("-rank", "day"), False),  # the nulls of day tie within each rank
        (("day", "-moment"), False),  # the nulls of moment tie within each day
    ],
)
def test_only_a_first_nullable_field_is_read_in_halves(order, halved):
    """Where the local database sorts nulls highest, only a first ordering field that is its
    only nullable one splits the local order into two remote orders; any other order with a
    nullable field reads every match there."""
    with assertNumRemoteCalls(0):
        lines = Sample.objects.filter(count=7).order_by(*order)[:2].cdms_query.splitlines()
    tops = ["$top=2" in line for line in lines]
    if NULLS_AS_REMOTE:
        assert tops == [True]
    else:
        assert tops == ([True, True] if halved else [False])


def test_get_reads_at_most_what_get_needs(acme):
    """``get`` asks for 21 rows, as Django does, to tell one from several."""
    assert request(orgs.filter(pk=acme.pk).order_by()[:21])["$top"] == "21"


def test_order_by_random_is_the_local_database_s():
    query = request(orgs.filter(employees__gte=1).order_by("?")[:3])
    assert "$orderby" not in query and "$top" not in query


@pytest.mark.parametrize(
    ("query", "expand"),
    [
        (
            lambda: people.filter(organisation__name="Acme"),
            f"parentcustomerid_account($select={ACCOUNT_SELECT})",
        ),
        (
            lambda: orgs.filter(parent__employees__gt=1000),
            f"parentaccountid($select={ACCOUNT_SELECT})",
        ),
        (
            lambda: orgs.filter(uk_based=True).select_related("parent"),
            f"parentaccountid($select={ACCOUNT_SELECT})",
        ),
        (lambda: orgs.filter(parent__isnull=True), None),
    ],
)
def test_related_records_come_with_the_records(query, expand):
    assert request(query()).get("$expand") == expand


def test_reverse_relation_reads_the_related_rows_first():
    text = orgs.filter(contacts__first_name="Ada").cdms_query
    first, main = text.splitlines()
    assert first.startswith("#1: GET contacts?")
    assert parse_qs(urlsplit(first.split(" ", 2)[2]).query)["$filter"] == ["firstname eq 'Ada'"]
    assert parse_qs(urlsplit(main.split(" ", 1)[1]).query)["$filter"] == [
        "accountid in (organisation of the contacts read #1)"
    ]


def test_subquery_reads_its_rows_first():
    text = people.filter(organisation__in=orgs.filter(name="Acme")).cdms_query
    first, main = text.splitlines()
    assert "$filter=name+eq+%27Acme%27" in first
    assert parse_qs(urlsplit(main.split(" ", 1)[1]).query)["$filter"] == [
        "_parentcustomerid_value in (keys of the accounts read #1)"
    ]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        (lambda: orgs.filter(founded_on__month=3), "founded_on__month"),
        (lambda: orgs.filter(founded_on__day__gte=3), "founded_on__day__gte"),
        (lambda: orgs.filter(name__regex="^A"), "name__regex"),
        (lambda: orgs.filter(name__gt="N"), "name__gt"),
        (lambda: orgs.filter(parent__founded_on__week_day=2), "parent__founded_on__week_day"),
        (lambda: orgs.filter(Q(employees=1) | Q(founded_on__month=3)), "founded_on__month"),
        (lambda: orgs.exclude(Q(employees=1) & Q(founded_on__month=3)), "founded_on__month"),
        (lambda: people.exclude(first_name=F("last_name")), "first_name"),
    ],
)
def test_relaxed_to_nothing_is_refused(query, named):
    with assertNumRemoteCalls(0), pytest.raises(CDMSNotSupported) as refused:
        _ = query().cdms_query
    assert f"'{named}'" in str(refused.value)
    assert "skip_cdms()" in str(refused.value)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(lambda: orgs.filter(uk_based=True, contacts__isnull=True), id="isnull"),
        pytest.param(
            lambda: orgs.filter(uk_based=True).exclude(contacts__isnull=False), id="exclude"
        ),
        pytest.param(
            lambda: orgs.filter(uk_based=True).annotate(n=Count("contacts")), id="annotate"
        ),
    ],
)
def test_related_rows_of_the_records_read_are_synced_after(query):
    """Which related rows exist, or how many: relaxed remotely, and the related rows of every
    record read are synced after the main read."""
    lines = query().cdms_query.splitlines()
    assert len(lines) == 2
    assert parse_qs(urlsplit(lines[0].split(" ", 1)[1]).query)["$filter"] == ["new_ukbased eq true"]
    assert lines[1] == "then: the contacts whose organisation is a record read"
