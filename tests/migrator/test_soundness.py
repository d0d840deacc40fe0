"""A cache in front of a system of record may be slow; it may never be wrong without saying
so, and it may never lose data. Each test here reproduces a class of failure a hostile user
found (a live row deleted on inference, stale or wrong answers, errors where Django answers,
writes that could not be retried), checked against Django's own answer over a fresh copy of
the remote where the answer depends on the database.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import NOT_PROVIDED, Count, Q

from cdms_api.errors import CDMSError, CDMSNotSupported
from core.models import Contact, Organisation
from migrator import remote
from migrator.loader import RemoteNullWarning
from migrator.sync import SyncLimitWarning
from migrator.testing import assertNumRemoteCalls
from tests.migrator.crm import names
from tests.migrator.test_reads import filter_of
from tests.secondapp.models import Company, Person, Sample
from tests.seeded import ACME, CONTOSO, ORGANIC, WIDGETS

orgs = Organisation.objects
UTC = dt.UTC


def fresh_answer(model, condition: Q) -> set:
    """Django's answer over a complete, fresh copy of the remote; the local table is then
    emptied, so that the synced read starts from nothing."""
    list(model.objects.all())
    expected = set(model.objects.skip_cdms().filter(condition).values_list("cdms_pk", flat=True))
    model.objects.skip_cdms().all().delete()
    return expected


def synced_answer(model, condition: Q) -> set:
    return set(model.objects.filter(condition).values_list("cdms_pk", flat=True))


def assert_answers_as_django(model, condition: Q) -> None:
    """The synced read answers what Django answers over a fresh copy of the remote."""
    expected = fresh_answer(model, condition)
    assert synced_answer(model, condition) == expected


# Data loss ---------------------------------------------------------------------------------------


def sample(crm, name: str, **values) -> str:
    """A new_samples record made behind the ORM's back; its key."""
    record = crm.client.create("new_samples", {"new_name": name, "new_rank": 0, **values})
    return record["new_sampleid"]


@pytest.mark.parametrize(
    ("stale", "local_rank", "read", "expected"),
    [
        ("Alpha", 1, lambda qs: qs[:1][0], "Beta"),
        ("Alpha", 1, lambda qs: qs.first(), "Beta"),
        ("Alpha", 1, lambda qs: qs.earliest("rank"), "Beta"),
        ("Beta", 1000, lambda qs: qs.latest("rank"), "Alpha"),
    ],
    ids=["slice", "first", "earliest", "latest"],
)
def test_a_limited_read_never_deletes_a_live_row(crm, stale, local_rank, read, expected):
    """A read cut short by ``$top`` says nothing of the records it did not return: a stale
    row missing from it is re-checked by key, never deleted on inference (what only the
    local row holds would be lost)."""
    keys = [sample(crm, "Alpha", new_rank=100), sample(crm, "Beta", new_rank=5)]
    assert len(list(Sample.objects.filter(cdms_pk__in=keys))) == 2
    Sample.objects.skip_cdms().filter(name=stale).update(rank=local_rank, cdms_etag='W/"stale"')
    query = Sample.objects.filter(cdms_pk__in=keys).order_by("rank")
    assert "$top=1" in query[:1].cdms_query
    assert "new_rank ne null" in filter_of(query[:1])  # a record without a rank cannot be stored

    assert read(query).name == expected
    assert Sample.objects.skip_cdms().get(name=stale).rank == {"Alpha": 100, "Beta": 5}[stale]


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda qs: qs.latest("rank"), "High"),
        (lambda qs: qs.order_by("rank").last(), "High"),
        (lambda qs: qs.order_by("rank").reverse()[:1][0], "High"),
        (lambda qs: qs.order_by("-rank").reverse()[:1][0], "Lowest"),
        (lambda qs: qs.earliest("-rank"), "High"),
    ],
    ids=["latest", "last", "reverse", "reverse-descending", "earliest-descending"],
)
def test_a_reversed_order_is_sent_reversed_with_its_top(crm, read, expected):
    """``reverse()``, ``last()`` and ``latest()`` flip the query's order: the remote's first
    records are those of the flipped order, or the read returns the wrong ones (here the
    record not stored locally yet, which only the remote read can bring)."""
    sample(crm, "Low", new_rank=1, new_count=7)
    sample(crm, "Mid", new_rank=5, new_count=7)
    assert len(list(Sample.objects.filter(count=7))) == 2
    sample(crm, "High", new_rank=9, new_count=7)
    sample(crm, "Lowest", new_rank=0, new_count=7)
    query = Sample.objects.filter(count=7)
    with assertNumRemoteCalls(1):
        assert read(query).name == expected


def test_a_reversed_order_sends_its_flipped_direction():
    query = Sample.objects.filter(count=7).order_by("rank", "-day").reverse()[:1]
    assert "&$orderby=new_rank+desc,new_day&" in query.cdms_query + "&"
    # a $top over the nullable day where the local database sorts nulls as Dataverse does
    assert query.cdms_query.endswith("&$top=1") != connection.features.nulls_order_largest


def test_a_read_cut_short_keeps_rows_their_local_fields_and_the_keys_pointing_at_them(crm):
    """The same with a second app's models: local-only fields and a ``SET_NULL`` foreign key
    pointing at the row stay. (``headcount`` reads the remote's null as its default, which
    sorts elsewhere remotely, so its order is not the remote's: no ``$top``.)"""
    keys = [crm.add(n, numberofemployees=e)["accountid"] for n, e in [("Alpha", 100), ("Beta", 5)]]
    list(Company.objects.filter(cdms_pk__in=keys))
    alpha = Company.objects.skip_cdms().get(name="Alpha")
    Company.objects.skip_cdms().filter(pk=alpha.pk).update(
        headcount=1, cdms_etag='W/"stale"', notes="kept locally"
    )
    Person.objects.skip_cdms().create(surname="Local", employer=alpha)
    query = Company.objects.filter(cdms_pk__in=keys).order_by("headcount")
    assert "$top" not in query[:1].cdms_query
    assert query.first().name == "Beta"
    alpha = Company.objects.skip_cdms().get(pk=alpha.pk)
    assert (alpha.headcount, alpha.notes) == (100, "kept locally")
    assert Person.objects.skip_cdms().get(surname="Local").employer_id == alpha.pk


def test_a_record_absent_from_a_complete_read_by_key_is_deleted(crm):
    key = crm.add("Gone Ltd")["accountid"]
    assert Company.objects.get(cdms_pk=key).name == "Gone Ltd"
    crm.client.delete("accounts", key)
    with assertNumRemoteCalls(1), pytest.raises(Company.DoesNotExist):
        Company.objects.get(cdms_pk=key)
    assert not Company.objects.skip_cdms().filter(cdms_pk=key).exists()


# Stale or wrong answers -----------------------------------------------------------------------


def test_a_slice_with_an_offset_rechecks_the_rows_before_it(crm, synced):
    """The rows before an offset decide which rows fall in the slice."""
    crm.drop(ORGANIC)  # sorts first
    query = orgs.filter(uk_based=True).order_by("name")[1:3]
    with assertNumRemoteCalls(2):  # the read, and the re-check of the row it did not return
        assert [o.name for o in query] == [WIDGETS, CONTOSO]
    crm.assert_touched_in_sync()


@pytest.mark.parametrize(
    "condition",
    [
        Q(name__iexact="KIVANÇ LTD"),
        Q(name__icontains="kiv"),
        Q(name__istartswith="KIV"),
        Q(name__iendswith="STAR CO"),
        Q(name__icontains="kelvin"),
        Q(name__iexact="straße co"),
        Q(name__icontains="é"),
    ],
    ids=str,
)
def test_case_insensitive_matches_find_what_the_local_database_folds(crm, condition):
    """PostgreSQL folds characters Dataverse may not (the dotless i with i, the long s with
    s, the Kelvin sign with k): the remote filter must still select every record the local
    query can match."""
    for name in [
        "K\u0131van\u00e7 Ltd",
        "Kivanc Ltd",
        "\u017ftar Co",
        "\u212aelvin Co",
        "Straße Co",
    ]:
        crm.add(name)
    assert_answers_as_django(Organisation, condition)


def test_the_remote_filter_folds_as_the_local_database_does():
    query = orgs.filter(name__icontains="kim")
    expected = (
        "contains(name,'kim')"
        if connection.vendor == "sqlite"  # folds ASCII only, as Dataverse does too
        else "contains(name,'k[Ii\u0131]m')"  # the dotless i is I in upper case
    )
    assert filter_of(query) == expected


def test_a_write_leaves_the_local_row_as_the_crm_stored_it(crm):
    """The CRM rounds a decimal to its column's scale and keeps whole seconds: the local row
    and the instance take what it stored, or a later read, seeing the same ETag, would never
    correct them."""
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 654321, tzinfo=UTC)
    sample = Sample.objects.create(name="Rounded", rank=1, amount=Decimal("1.2351"), moment=moment)
    record = crm.client.get("new_samples", sample.cdms_pk)
    assert record["new_amount"] == Decimal("1.24")
    row = Sample.objects.skip_cdms().get(pk=sample.pk)
    assert row.amount == sample.amount == Decimal("1.24")
    assert row.moment == sample.moment == moment.replace(microsecond=0)

    sample.amount = Decimal("2.675")
    sample.save()
    row = Sample.objects.skip_cdms().get(pk=sample.pk)
    assert (
        row.amount == sample.amount == crm.client.get("new_samples", sample.cdms_pk)["new_amount"]
    )
    assert Sample.objects.get(pk=sample.pk).amount == row.amount


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/New_York"])
def test_a_date_given_an_aware_datetime_is_the_day_django_stores(crm, settings, zone):
    settings.TIME_ZONE = zone
    moment = dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    org = Organisation.objects.create(name="Dated Ltd", founded_on=moment)
    day = Organisation._meta.get_field("founded_on").to_python(moment)
    assert crm.client.get("accounts", org.cdms_pk)["new_foundedon"] == day.isoformat()
    assert orgs.skip_cdms().get(pk=org.pk).founded_on == org.founded_on == day


# Errors where Django answers ----------------------------------------------------------------------

INT32 = 2**31


@pytest.mark.parametrize(
    "condition",
    [
        Q(employees=INT32),
        Q(employees__gt=INT32),
        Q(employees__gte=INT32),
        Q(employees__lt=INT32),
        Q(employees__lte=-INT32 - 1),
        Q(employees__gt=-INT32 - 1),
        Q(employees__in=[INT32, 45, -INT32 - 5]),
        Q(employees__range=(-(2**40), 2**40)),
        Q(employees__range=(INT32, 2**40)),
        ~Q(employees=INT32),
        ~Q(employees=-INT32 - 1),
        Q(employees=-INT32 - 1),
        Q(founded_on__year=9999),
        Q(founded_on__year__gte=9999),
        Q(founded_on__year__lte=9999),
        Q(founded_on__year=1),
        Q(founded_on__year=1753),
        Q(founded_on__lt=dt.date(1753, 1, 2)),
        Q(founded_on__lte=dt.date(9999, 12, 31)),
        Q(founded_on__gte=dt.date(1, 1, 1)),
    ],
    ids=str,
)
def test_values_beyond_the_remote_types_range_answer_as_django(crm, condition):
    crm.add("Far Future Ltd", new_foundedon="9999-12-31", numberofemployees=2**31 - 1)
    crm.add("Earliest Ltd", new_foundedon="1753-01-01", numberofemployees=-(2**31))
    assert_answers_as_django(Organisation, condition)


@pytest.mark.parametrize(
    "condition",
    [
        Q(moment__date=dt.date(9999, 12, 31)),
        Q(moment__date__gte=dt.date(9999, 12, 31)),
        Q(moment__year=9999),
        Q(moment__year=1),
        Q(moment__date=dt.date(1, 1, 1)),
        Q(moment__year=1753),
        Q(moment__date=dt.date(1753, 1, 1)),
        Q(big__gt=2**63 - 1) | Q(big=2**63 - 1),
        Q(count__lt=-(2**31) - 1) | Q(count=-(2**31)),
    ],
    ids=str,
)
def test_datetimes_and_big_integers_at_their_limits_answer_as_django(crm, condition):
    sample(crm, "Last", new_moment="9999-12-31T09:00:00Z", new_big=2**63 - 1)
    sample(crm, "First", new_moment="1753-01-01T00:00:00Z", new_count=-(2**31))
    assert_answers_as_django(Sample, condition)


@pytest.mark.parametrize(
    "condition",
    [
        Q(moment__date=dt.date(9999, 12, 31)),
        Q(moment__year=9999),
        Q(moment__date__lt=dt.date(9999, 12, 31)),
    ],
    ids=str,
)
def test_the_last_day_in_a_time_zone_ahead_of_utc(crm, settings, condition):
    """In UTC+14 the last day ends after the last instant a date-time holds."""
    settings.TIME_ZONE = "Pacific/Kiritimati"
    sample(crm, "Last", new_moment="9999-12-31T09:00:00Z")
    sample(crm, "Eve", new_moment="9999-12-30T09:00:00Z")
    assert_answers_as_django(Sample, condition)


def test_a_list_too_long_for_any_request_is_relaxed_not_sent(crm, synced, settings):
    """A negated list cannot be split over requests: it is relaxed; what then constrains
    nothing is refused, or read in full where that is allowed."""
    many = list(range(5000))
    with assertNumRemoteCalls(0), pytest.raises(CDMSNotSupported, match="too long"):
        list(orgs.exclude(employees__in=many))
    settings.CDMS = {**settings.CDMS, "ALLOW_FULL_READS": True}
    with pytest.warns(SyncLimitWarning):
        expected = names(orgs.skip_cdms().exclude(employees__in=many))
        assert names(orgs.exclude(employees__in=many)) == expected


def test_a_value_too_long_for_any_request_is_relaxed(crm, synced):
    query = orgs.filter(name="x" * 40_000, employees=45)
    assert filter_of(query) == "numberofemployees eq 45"
    with assertNumRemoteCalls(1):
        assert names(query) == set()


def test_a_remote_null_in_a_field_with_a_default_reads_as_the_default(crm):
    key = crm.add("Nobody Counted Ltd")["accountid"]
    assert Company.objects.get(cdms_pk=key).headcount == 0


@pytest.mark.parametrize(
    "condition",
    [Q(headcount__isnull=False), Q(headcount__isnull=True), ~Q(headcount__isnull=True)],
    ids=str,
)
def test_isnull_on_a_field_that_reads_a_remote_null_as_its_default(crm, condition):
    crm.add("Nobody Counted Ltd")
    assert_answers_as_django(Company, condition)


@pytest.fixture
def full_reads(settings):
    """Whole-set reads allowed: conditions the remote cannot express are relaxed, and the
    local database answers them."""
    settings.CDMS = {**settings.CDMS, "ALLOW_FULL_READS": True}
    remote.reset()


@pytest.mark.usefixtures("full_reads")
@pytest.mark.parametrize(
    "condition",
    [
        Q(employees__range=(None, 5)),
        ~Q(employees__range=(None, 5)),
        Q(founded_on__iso_year=2009),
        ~Q(founded_on__iso_year=2009),
        Q(founded_on__iso_year__gte=2010),
    ],
    ids=str,
)
def test_conditions_the_remote_cannot_express_are_relaxed_and_answer_as_django(crm, condition):
    crm.add("New Year Ltd", new_foundedon="2010-01-01", numberofemployees=3)  # ISO year 2009
    assert_answers_as_django(Organisation, condition)


@pytest.mark.usefixtures("full_reads")
@pytest.mark.parametrize(
    "condition",
    [
        Q(ratio=float("nan")),
        ~Q(ratio=float("nan")),
        Q(ratio__lt=float("inf")),
        Q(ratio__gt=float("-inf")),
        Q(ratio__range=(float("-inf"), 0.5)),
    ],
    ids=str,
)
def test_comparisons_with_non_finite_floats_answer_as_django(crm, condition):
    sample(crm, "Half", new_ratio=0.25)
    sample(crm, "Unknown")
    assert_answers_as_django(Sample, condition)


@pytest.mark.usefixtures("full_reads")
def test_a_grouped_read_whose_conditions_are_all_aggregates(crm):
    answer = set(orgs.annotate(n=Count("subsidiaries")).filter(n__gt=0).values_list("name", "n"))
    assert answer == {(ACME, 1)}


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (lambda qs: qs.exists(), True),
        (lambda qs: [s.name for s in qs.order_by("count")[:1]], ["Stored"]),
        (lambda qs: [s.name for s in qs.order_by("-big")[:2]], ["Stored"]),
    ],
    ids=["exists", "slice", "reversed-slice"],
)
def test_a_limited_read_spends_its_records_on_ones_that_can_be_stored(crm, read, expected):
    """A record holding null in a field that cannot hold it (no default) is left out of every
    read: the first records a ``$top`` asks for are ones the loader stores."""
    for i in range(20):
        sample(crm, f"Unstorable {i}", new_rank=None, new_count=i % 2, new_big=10 + i)
    sample(crm, "Stored", new_count=1, new_big=1)
    assert read(Sample.objects.filter(count__gte=0, big__gte=1)) == expected


def test_a_remote_null_a_field_cannot_hold_does_not_fail_the_read(crm, monkeypatch):
    """Without a default the record cannot be stored: it is left out, with a warning that
    names it; the rest of the read goes on (``manage.py check`` warns of such fields)."""
    monkeypatch.setattr(Company._meta.get_field("headcount"), "default", NOT_PROVIDED)
    nobody = crm.add("Nobody Counted Ltd")["accountid"]
    counted = crm.add("Counted Ltd", numberofemployees=3)["accountid"]
    with pytest.warns(RemoteNullWarning, match=f"accounts\\({nobody}\\) has null"):
        rows = list(Company.objects.filter(cdms_pk__in=[nobody, counted]))
    assert [str(row.cdms_pk) for row in rows] == [counted]


def test_describing_a_query_leaves_it_as_it_was(synced):
    query = orgs.filter(Q(contacts__first_name="Ada") | Q(name=CONTOSO)).order_by("name")
    sql = str(query.query)
    query.cdms_query  # noqa: B018
    assert str(query.query) == sql
    assert names(query) == {ACME, CONTOSO}


# Writes that can be retried ----------------------------------------------------------------------


def lost_answers(simulator) -> None:
    """Every request to accounts is applied and then answered 503, the read-back included:
    the client cannot find out whether its write happened."""
    simulator.add_faults(
        {
            "method": "*",
            "path": "/accounts",
            "times": None,
            "action": "apply_then_fail",
            "status": 503,
        }
    )


def test_a_retried_create_adopts_the_record_its_lost_answer_created(crm, cdms_simulator):
    org = Organisation(name="Retried Ltd", employees=3)
    lost_answers(cdms_simulator)
    with pytest.raises(CDMSError):
        org.save()
    assert not orgs.skip_cdms().filter(name="Retried Ltd").exists()
    cdms_simulator.clear_faults()

    org.employees = 4  # changed in between: the retry sends it
    org.save()
    [record] = crm.find("accounts", "name", "Retried Ltd")
    assert record["accountid"] == str(org.cdms_pk)
    assert record["numberofemployees"] == orgs.skip_cdms().get(pk=org.pk).employees == 4


def test_a_failed_block_retried_with_the_same_instances_creates_nothing_twice(crm, cdms_simulator):
    """Within ``transaction.atomic()`` an earlier save's record stays in the CRM when a later
    save fails (its local row is rolled back); retried with the same instances, which keep
    their keys, the block creates each record once."""
    org = Organisation(name="Block Ltd")
    person = Contact(last_name="Blocked")

    def block():
        with transaction.atomic():
            org.save()
            person.organisation = org
            person.save()

    cdms_simulator.add_faults(
        {"method": "POST", "path": "/contacts$", "times": None, "status": 400}
    )
    with pytest.raises(CDMSError):
        block()
    assert not orgs.skip_cdms().filter(name="Block Ltd").exists()  # rolled back locally
    assert len(crm.find("accounts", "name", "Block Ltd")) == 1  # left in the CRM

    cdms_simulator.clear_faults()
    block()
    [account] = crm.find("accounts", "name", "Block Ltd")
    [contact] = crm.find("contacts", "lastname", "Blocked")
    assert account["accountid"] == str(org.cdms_pk)
    assert contact["_parentcustomerid_value"] == str(org.cdms_pk)
    assert orgs.skip_cdms().get(pk=org.pk).cdms_pk == org.cdms_pk
    assert Contact.objects.skip_cdms().get(pk=person.pk).organisation_id == org.pk
