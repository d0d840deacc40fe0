"""The sync-through read is sound: for random remote data and random ``Q`` trees, a query on a
local cache that starts empty or stale returns exactly the rows the same query returns, local
only, on a cache freshly loaded with every remote record.

The remote filter only has to select a superset of the true matches (principle 1 of the
architecture); a wrong translation, relaxation or negation shows up here as a missing row, a
stale row as an extra one."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.db.models import F, Q
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cdms_api.errors import CDMSNotSupported
from core.models import Organisation

# Many examples of many requests each: minutes on a busy machine, past the suite's 120 s a test.
pytestmark = pytest.mark.timeout(900)

# Data --------------------------------------------------------------------------------------------

# mixed case, accents, the LIKE wildcards % _ [ ], a quote and a space; a small alphabet so
# that names, patterns and values collide often
ALPHABET = "aAbBéÉüÜ%_[]' "
texts = st.text(ALPHABET, max_size=5)
employees = st.one_of(st.none(), st.integers(-2, 12))
revenue_values = st.one_of(
    st.decimals(-50, 50, places=4, allow_nan=False, allow_infinity=False),
    st.sampled_from([Decimal(0), Decimal("1.5"), Decimal("10")]),
)
revenues = st.one_of(st.none(), revenue_values)
flags = st.sampled_from([None, True, False])
day_values = st.one_of(
    st.dates(dt.date(1999, 12, 25), dt.date(2001, 1, 6)),
    st.sampled_from([dt.date(2000, 1, 1), dt.date(2000, 2, 29), dt.date(2000, 12, 31)]),
)
days = st.one_of(st.none(), day_values)
KEYS = [uuid.UUID(int=0xACC0_0000_0000_4000_8000_0000_0000_0000 + n) for n in range(10)]


@st.composite
def account_records(draw) -> list[dict]:
    """Remote account records, keyed by ``KEYS``; a parent is an earlier record."""
    records = []
    for index in range(draw(st.integers(0, 8))):
        record = {
            "accountid": str(KEYS[index]),
            "name": draw(texts),
            "websiteurl": draw(st.one_of(st.none(), texts)),
            "telephone1": draw(st.sampled_from([None, "", "1", "b", "B"])),
            "numberofemployees": draw(employees),
            "revenue": draw(revenues),
            "new_ukbased": draw(flags),
            "new_foundedon": None if (day := draw(days)) is None else day.isoformat(),
        }
        if index and draw(st.booleans()):
            parent = draw(st.integers(0, index - 1))
            record["parentaccountid@odata.bind"] = f"/accounts({KEYS[parent]})"
        records.append(record)
    return records


@st.composite
def stale_rows(draw) -> list[dict]:
    """Local rows cached from an older state of the remote: changed values, a wrong parent, or
    a record since deleted remotely (a key the remote does not have)."""
    return [
        {
            "cdms_pk": key,
            "cdms_etag": 'W/"stale"',
            **draw(row_values()),
            "parent": draw(st.one_of(st.none(), st.sampled_from(KEYS))),
        }
        for key in draw(st.lists(st.sampled_from(KEYS), unique=True, max_size=6))
    ]


@st.composite
def local_only_rows(draw) -> list[dict]:
    """Rows made locally (``skip_cdms``), which have no remote key."""
    return [draw(row_values()) for _ in range(draw(st.integers(0, 2)))]


@st.composite
def row_values(draw) -> dict:
    """A row's own values, drawn as the remote's are."""
    return {
        "name": draw(texts),
        "website": draw(texts),
        "employees": draw(employees),
        "revenue": draw(revenues),
        "uk_based": draw(flags),
        "founded_on": draw(days),
    }


# Queries -----------------------------------------------------------------------------------------

TEXT_LOOKUPS = [
    "exact",
    "iexact",
    "contains",
    "icontains",
    "startswith",
    "istartswith",
    "endswith",
    "iendswith",
    "gt",
    "lte",
]
ORDER_LOOKUPS = ["exact", "gt", "gte", "lt", "lte"]
REGEXES = ["^a", "b$", "[éÉ]", "%", "^$", r"\[", "a.b"]
key_values = st.sampled_from([*KEYS[:4], uuid.UUID(int=1)])


def _leaf(field: str, lookups: list[str], values) -> st.SearchStrategy[Q]:
    return st.builds(
        lambda lookup, value: Q(**{f"{field}__{lookup}": value}), st.sampled_from(lookups), values
    )


leaves = st.one_of(
    # text
    _leaf("name", TEXT_LOOKUPS, texts),
    _leaf("name", ["in"], st.lists(texts, max_size=3)),
    _leaf("name", ["regex", "iregex"], st.sampled_from(REGEXES)),
    _leaf("website", ["exact", "iexact", "contains"], texts),
    _leaf("website", ["isnull"], st.booleans()),
    _leaf("phone", ["exact"], st.sampled_from(["", "1", "b"])),
    _leaf("phone", ["in"], st.lists(st.sampled_from(["", "1", "B"]), max_size=2)),
    _leaf("name", ["isnull"], st.booleans()),
    # numbers
    _leaf("employees", [*ORDER_LOOKUPS], st.integers(-2, 12)),
    _leaf("employees", ["in"], st.lists(st.one_of(st.none(), st.integers(-2, 12)), max_size=3)),
    _leaf("employees", ["range"], st.tuples(st.integers(-2, 12), st.integers(-2, 12))),
    _leaf("employees", ["isnull"], st.booleans()),
    st.builds(lambda v: Q(employees=v), st.none()),
    _leaf("revenue", ORDER_LOOKUPS, revenue_values),
    _leaf(
        "revenue",
        ["range"],
        st.tuples(st.decimals(-50, 50, places=2), st.decimals(-50, 50, places=2)),
    ),
    # booleans
    _leaf("uk_based", ["exact"], flags),
    _leaf("uk_based", ["isnull"], st.booleans()),
    # dates and their parts
    _leaf("founded_on", ORDER_LOOKUPS, day_values),
    _leaf("founded_on", ["range"], st.tuples(day_values, day_values)),
    _leaf("founded_on", ["in"], st.lists(days, max_size=3)),
    _leaf("founded_on", ["isnull"], st.booleans()),
    _leaf("founded_on__year", ORDER_LOOKUPS, st.integers(1999, 2001)),
    _leaf("founded_on__month", ["exact", "gt", "lte"], st.integers(1, 12)),
    _leaf("founded_on__day", ["exact", "lt"], st.integers(1, 31)),
    _leaf("founded_on__week_day", ["exact"], st.integers(1, 7)),
    _leaf("founded_on__week_day", ["in"], st.lists(st.integers(1, 7), max_size=2)),
    # keys
    _leaf("cdms_pk", ["exact"], key_values),
    _leaf("cdms_pk", ["in"], st.lists(key_values, max_size=3)),
    # across the parent lookup
    _leaf("parent__name", ["exact", "icontains", "startswith"], texts),
    _leaf("parent__name", ["in"], st.lists(texts, max_size=2)),
    _leaf("parent__employees", ["gt", "exact"], st.integers(-2, 12)),
    _leaf("parent__employees", ["isnull"], st.booleans()),
    _leaf("parent__cdms_pk", ["exact"], key_values),
    _leaf("parent__cdms_pk", ["in"], st.lists(key_values, max_size=2)),
    _leaf("parent", ["isnull"], st.booleans()),
    _leaf("parent__uk_based", ["exact"], flags),
    _leaf("parent__parent__employees", ["gte"], st.integers(-2, 12)),
    _leaf("parent__parent__name", ["iexact"], texts),
    # across the reverse relation (one-to-many: relaxed)
    _leaf("subsidiaries__employees", ["gt"], st.integers(-2, 12)),
    _leaf("subsidiaries__name", ["icontains"], texts),
    _leaf("subsidiaries", ["isnull"], st.booleans()),
    # column against column
    st.sampled_from(
        [
            Q(employees__gt=F("employees")),
            Q(employees=F("employees")),
            Q(employees__lte=F("employees")),
            Q(revenue__gte=F("revenue")),
            Q(founded_on__lt=F("founded_on")),
            Q(name=F("website")),
            Q(name__iexact=F("website")),
            Q(website=F("phone")),
            Q(name__gt=F("phone")),
            Q(employees__gt=F("parent__employees")),
            Q(founded_on=F("parent__founded_on")),
            Q(name=F("parent__name")),
        ]
    ),
)


def _tree(children: st.SearchStrategy[Q]) -> st.SearchStrategy[Q]:
    return st.one_of(
        st.builds(lambda a, b: a & b, children, children),
        st.builds(lambda a, b: a | b, children, children),
        st.builds(lambda a: ~a, children),
    )


q_trees = st.recursive(leaves, _tree, max_leaves=5)
# each query: filter() or exclude() of a tree, optionally chained with a second one
queries = st.lists(
    st.tuples(st.sampled_from(["filter", "exclude"]), q_trees), min_size=1, max_size=2
)

# true of every row, and translatable: a conjunct that keeps a query the remote would otherwise
# read in full (CDMSNotSupported) to the point of the property
EVERY_ROW = Q(employees__gte=-1000) | Q(employees__isnull=True)


def _queryset(steps):
    queryset = Organisation.objects.all()
    for method, tree in steps:
        queryset = getattr(queryset, method)(tree)
    return queryset


def _reset_local() -> None:
    Organisation.objects.skip_cdms().all().delete()


def _load_stale(rows: list[dict]) -> None:
    by_key = {}
    for row in rows:
        values = {k: v for k, v in row.items() if k != "parent"}
        by_key[row["cdms_pk"]] = Organisation.objects.skip_cdms().create(**values)
    for row in rows:
        if row["parent"] in by_key:
            by_key[row["cdms_pk"]].parent = by_key[row["parent"]]
            by_key[row["cdms_pk"]].save(skip_cdms=True)


def _load_local_only(rows: list[dict]) -> None:
    """Rows made locally (``skip_cdms``): no remote key, never synced."""
    for row in rows:
        Organisation.objects.skip_cdms().create(**row)


def _synced_keys(queryset) -> set:
    """The rows' keys (a row without one by its values)."""
    return {row.cdms_pk or (row.name, row.website, row.employees, row.uk_based) for row in queryset}


def check_query(
    simulator, records: list[dict], stale: list[dict], steps, local_only: list[dict] = ()
) -> None:
    """The property for one example: the sync-through read on a cache holding ``stale`` (empty
    if none) and rows made locally (``local_only``) returns the rows the query returns locally
    on a fresh copy of the remote with the same local rows; ``count()`` on that cache, the
    number of them."""
    simulator.reset()
    simulator.load("accounts", records)

    # what the query answers on a complete, fresh copy of the remote
    _reset_local()
    list(Organisation.objects.all())  # an unfiltered read: every remote record
    _load_local_only(local_only)
    try:
        expected = _synced_keys(_queryset(steps).skip_cdms())
        expected_count = _queryset(steps).skip_cdms().count()
    except (ValueError, TypeError):  # a value Django itself refuses
        assume(False)

    def on_the_stale_cache(read):
        _reset_local()
        _load_stale(stale)
        _load_local_only(local_only)
        return read()

    # what the sync-through count and read answer on a stale (or empty) cache, each on its own
    queryset = _queryset(steps)
    try:
        actual_count = on_the_stale_cache(queryset.count)
    except CDMSNotSupported:  # relaxed to nothing: keep it to the point with a translatable "true"
        queryset = queryset.filter(EVERY_ROW)
        actual_count = on_the_stale_cache(queryset.count)
    assert actual_count == expected_count, (
        f"count() {actual_count}, {expected_count} expected\n"
        f"query: {steps}\nremote: {queryset.cdms_query}\nrecords: {records}\nstale: {stale}"
    )
    actual = on_the_stale_cache(lambda: _synced_keys(queryset))
    assert actual == expected, (
        f"missing {expected - actual}, extra {actual - expected}\n"
        f"query: {steps}\nremote: {queryset.cdms_query}\nrecords: {records}\nstale: {stale}"
    )


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data(), records=account_records(), steps=queries)
def test_sync_through_reads_match_a_fresh_copy(cdms_simulator, data, records, steps):
    stale = data.draw(stale_rows(), label="stale")
    local_only = data.draw(local_only_rows(), label="local only")
    check_query(cdms_simulator, records, stale, steps, local_only)


# Counterexamples the property found, kept as regression tests -----------------------------------


def account(index: int, parent: int | None = None, **values) -> dict:
    record = {"accountid": str(KEYS[index]), "name": "", **values}
    if parent is not None:
        record["parentaccountid@odata.bind"] = f"/accounts({KEYS[parent]})"
    return record


def stale_row(index: int, parent: int | None = None, **values) -> dict:
    row = {"name": "", "website": "", "employees": None, "revenue": None}
    row.update(uk_based=None, founded_on=None, **values)
    return {"cdms_pk": KEYS[index], "cdms_etag": 'W/"stale"', "parent": _key(parent), **row}


def _key(index: int | None):
    return None if index is None else KEYS[index]


@pytest.mark.parametrize(
    "records, steps",
    [
        # a remote '' reads as "", as a remote null does: `name eq null` alone missed it
        ([account(0, name="")], [("filter", Q(name=""))]),
        ([account(0, telephone1=None)], [("filter", Q(phone__in=["", "x"]))]),
        # two texts that read as "" locally are null remotely, where null eq null is not true
        ([account(0, name="", websiteurl=None)], [("filter", Q(name=F("website")))]),
        # every text contains "", a remote null too (`contains(websiteurl,'')` is not true there)
        ([account(0, websiteurl=None)], [("filter", Q(website__contains=""))]),
        # a non-null text field is never null locally: `websiteurl ne null` missed the ""s
        ([], [("exclude", Q(website__isnull=True))]),
        ([], [("filter", ~Q(website__isnull=True))]),
        ([], [("exclude", Q(parent__name__isnull=False))]),
        # C's parent B is read with it, and B's parent A before B: A, also in the page read,
        # was then created twice (IntegrityError)
        (
            [account(0, websiteurl=""), account(1, 0, websiteurl="x"), account(2, 1)],
            [("filter", Q(website=""))],
        ),
        # a condition across a one-to-many relation reads rows the main read does not bring
        ([], [("filter", Q(parent__isnull=True) & Q(subsidiaries__employees__gt=0))]),
    ],
)
def test_counterexamples_on_an_empty_cache(cdms_simulator, records, steps):
    check_query(cdms_simulator, records, [], steps)


@pytest.mark.parametrize(
    "records, stale, steps",
    [
        # both rows deleted remotely: rechecking the first (deleted locally, SET_NULL) brought
        # the second into the results, which were then returned without a recheck
        (
            [],
            [stale_row(0), stale_row(1, parent=0)],
            [("filter", Q(name="")), ("exclude", Q(parent__cdms_pk=KEYS[0]))],
        ),
        # the parent row is stale: the query reads it through the join, so it must be refreshed
        # along with the records (here its employees, null locally, are 0 remotely)
        (
            [account(0, numberofemployees=0), account(1, 0, name="A")],
            [stale_row(0)],
            [("filter", Q(parent__employees__isnull=False))],
        ),
        # ... and the other way: the local parent matches, the remote one does not
        (
            [account(0, name="now"), account(1, 0)],
            [stale_row(0, name="then"), stale_row(1, parent=0)],
            [("filter", Q(parent__name="then"))],
        ),
    ],
)
def test_counterexamples_on_a_stale_cache(cdms_simulator, records, stale, steps):
    check_query(cdms_simulator, records, stale, steps)


def test_iexact_against_a_column_is_relaxed(cdms_simulator):
    """On SQLite Django's ``iexact`` with ``F()`` is ``LIKE`` with the other column as its
    pattern ("" is iexact "%" there): not the case-insensitive equality ``eq`` is remotely."""
    check_query(
        cdms_simulator,
        [account(0, name="", websiteurl=None), account(1, name="", websiteurl="%")],
        [],
        [("filter", Q(name__iexact=F("website")))],
    )
