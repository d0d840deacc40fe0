"""Mappings and converters: the system check (``migrator.E001``) on broken mappings, the value
round trips of every field type a user maps (Python value -> remote JSON -> Python value, over
the client's own JSON encoding), foreign keys as lookups, and migrations up to date."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from io import StringIO

import pytest
import simplejson
from dateutil.parser import isoparse
from django.core import checks
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from cdms_api import codec, odata
from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation
from migrator import instances
from migrator.converters import Converter, OptionSet, converter_for, parse_instant
from migrator.loader import stored_only
from migrator.mapping import Lookup, Mapping
from migrator.models import CDMSModel
from migrator.translator import translate
from tests.secondapp.models import Sample

UTC = dt.UTC


class Throwaway(CDMSModel):
    """Base of the models these tests define in an isolated app registry."""

    class Meta:
        abstract = True
        app_label = "core"


@pytest.fixture
def isolated():
    """An app registry of its own for throwaway models, as Django's own tests use."""
    with isolate_apps("core") as apps:
        yield apps


def mapping_errors(isolated_apps) -> list[checks.CheckMessage]:
    """``migrator.E001`` messages of the isolated app, as ``manage.py check`` finds them."""
    found = checks.run_checks(
        app_configs=[isolated_apps.get_app_config("core")], tags=[checks.Tags.models]
    )
    return [message for message in found if message.id == "migrator.E001"]


# The system check --------------------------------------------------------------------------------


def test_the_project_mappings_pass_the_check():
    out = StringIO()
    call_command("check", "core", "migrator", stdout=out)
    assert "no issues" in out.getvalue()
    found = [(m.id, m.obj) for m in checks.run_checks() if m.id.startswith("migrator.")]
    # the test app's Sample.rank is made so on purpose: its records without a rank are skipped
    assert found == [("migrator.W001", Sample._meta.get_field("rank"))]


def test_a_correct_mapping_passes(isolated):
    class Account(Throwaway):
        name = models.CharField(max_length=50)
        parent = models.ForeignKey("self", null=True, on_delete=models.SET_NULL)

        class CDMS:
            entity_set = "accounts"
            fields = {"name": "name", "parent": "parentaccountid"}

    assert mapping_errors(isolated) == []
    assert Account.cdms.key == "accountid"


def test_a_field_the_model_does_not_have(isolated):
    class Account(Throwaway):
        name = models.CharField(max_length=50)

        class CDMS:
            entity_set = "accounts"
            fields = {"name": "name", "nmae": "telephone1"}

    [error] = mapping_errors(isolated)
    assert error.obj is Account
    assert error.msg == "class CDMS maps 'nmae', which is not a field of the model."
    assert "core.Account: (migrator.E001) class CDMS maps 'nmae'" in str(error)


@pytest.mark.parametrize(
    "make_field, kind",
    [
        (lambda: models.JSONField(null=True), "JSONField"),
        (lambda: models.FileField(blank=True), "FileField"),
        (lambda: models.BinaryField(null=True), "BinaryField"),
        (lambda: models.DurationField(null=True), "DurationField"),
        (lambda: models.GenericIPAddressField(null=True), "GenericIPAddressField"),
    ],
)
def test_a_field_type_with_no_converter(isolated, make_field, kind):
    class Account(Throwaway):
        data = make_field()

        class CDMS:
            entity_set = "accounts"
            fields = {"data": "new_data"}

    [error] = mapping_errors(isolated)
    assert error.msg == (
        f"class CDMS maps 'data', a {kind}: no converter for that type "
        '(give one: ("property", Converter())).'
    )


def test_a_field_type_with_a_converter_of_ones_own_passes(isolated):
    class JSONText(Converter):
        def to_python(self, field, value):
            return None if value is None else simplejson.loads(value)

        def to_remote(self, field, value):
            return None if value is None else simplejson.dumps(value)

    class Account(Throwaway):
        data = models.JSONField(null=True)

        class CDMS:
            entity_set = "accounts"
            fields = {"data": ("new_data", JSONText())}

    assert mapping_errors(isolated) == []
    fm = Account.cdms.get("data")
    assert fm.to_python(fm.to_remote({"a": [1, 2]})) == {"a": [1, 2]}


def test_a_field_that_cannot_hold_the_remote_null_is_reported(isolated):
    """``migrator.W001``: the CRM may leave a property null; a non-null field with no
    default cannot store such a record. Text reads null as "", a default stands in."""

    class Account(Throwaway):
        name = models.CharField(max_length=50)  # null reads as ""
        employees = models.IntegerField()  # reported
        revenue = models.DecimalField(max_digits=10, decimal_places=2, default=0)
        flag = models.BooleanField()  # reported
        parent = models.ForeignKey("self", on_delete=models.CASCADE)  # reported

        class CDMS:
            entity_set = "accounts"
            fields = {
                "name": "name",
                "employees": "numberofemployees",
                "revenue": "revenue",
                "flag": "new_ukbased",
                "parent": "parentaccountid",
            }

    found = checks.run_checks(
        app_configs=[isolated.get_app_config("core")], tags=[checks.Tags.models]
    )
    warnings = [m for m in found if m.id == "migrator.W001"]
    assert [w.obj.name for w in warnings] == ["employees", "flag", "parent"]
    assert "'numberofemployees', which may be null" in warnings[0].msg


def test_a_cascade_from_a_model_that_is_not_synced_is_reported(isolated):
    """``migrator.E011``: deleting a row of a model that is not synced goes through Django's
    plain deletion, which would delete the synced rows pointing at it locally only."""

    class Team(models.Model):
        class Meta:
            app_label = "core"

    class Member(Throwaway):
        name = models.CharField(max_length=50)
        team = models.ForeignKey(Team, on_delete=models.CASCADE)  # reported
        kept = models.ForeignKey(Team, null=True, on_delete=models.SET_NULL, related_name="+")
        boss = models.ForeignKey("self", null=True, on_delete=models.CASCADE)  # both synced

        class CDMS:
            entity_set = "contacts"
            fields = {"name": "lastname"}

    found = checks.run_checks(
        app_configs=[isolated.get_app_config("core")], tags=[checks.Tags.models]
    )
    errors = [m for m in found if m.id == "migrator.E011"]
    assert [e.obj.name for e in errors] == ["team"]
    assert "deleting one of its rows would delete rows of Member locally only" in errors[0].msg
    assert "SET_NULL or PROTECT" in errors[0].hint


def test_a_many_to_many_field(isolated):
    class Tag(Throwaway):
        label = models.CharField(max_length=20)

        class CDMS:
            entity_set = "new_tags"
            fields = {"label": "new_label"}

    class Account(Throwaway):
        tags = models.ManyToManyField(Tag)

        class CDMS:
            entity_set = "accounts"
            fields = {"tags": "new_account_tags"}

    [error] = mapping_errors(isolated)
    assert error.obj is Account
    assert error.msg == (
        "class CDMS maps 'tags', a ManyToManyField: only concrete fields and ForeignKeys to "
        "synced models can be mapped."
    )


def test_a_reverse_relation(isolated):
    class Account(Throwaway):
        class CDMS:
            entity_set = "accounts"
            fields = {"notes": "account_notes"}

    class Note(Throwaway):
        account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="notes")

        class CDMS:
            entity_set = "annotations"
            fields = {"account": "objectid_account"}

    [error] = mapping_errors(isolated)
    assert error.obj is Account
    assert error.msg == (
        "class CDMS maps 'notes', a ManyToOneRel: only concrete fields and ForeignKeys to "
        "synced models can be mapped."
    )


def test_a_remote_property_mapped_twice(isolated):
    class Account(Throwaway):
        name = models.CharField(max_length=50)
        title = models.CharField(max_length=50)
        parent = models.ForeignKey("self", null=True, on_delete=models.SET_NULL)
        parent_key = models.UUIDField(null=True)

        class CDMS:
            entity_set = "accounts"
            fields = {
                "name": "name",
                "title": "name",
                "parent": "parentaccountid",
                "parent_key": "_parentaccountid_value",
            }

    messages = sorted(error.msg for error in mapping_errors(isolated))
    assert messages == [
        "class CDMS maps the remote property '_parentaccountid_value' twice.",
        "class CDMS maps the remote property 'name' twice.",
    ]


def test_a_foreign_key_to_a_model_that_is_not_synced(isolated):
    class Sector(models.Model):
        label = models.CharField(max_length=20)

        class Meta:
            app_label = "core"

    class Unmapped(Throwaway):  # a CDMSModel without class CDMS is not synced either
        label = models.CharField(max_length=20)

    class Account(Throwaway):
        sector = models.ForeignKey(Sector, null=True, on_delete=models.SET_NULL)
        other = models.ForeignKey(Unmapped, null=True, on_delete=models.SET_NULL)

        class CDMS:
            entity_set = "accounts"
            fields = {"sector": "new_sectorid", "other": "new_otherid"}

    messages = {error.msg for error in mapping_errors(isolated) if error.obj is Account}
    assert messages == {
        "class CDMS maps 'sector', a ForeignKey to Sector, which is not synced.",
        "class CDMS maps 'other', a ForeignKey to Unmapped, which is not synced.",
    }


def test_a_missing_entity_set(isolated):
    class NoSpec(Throwaway):
        name = models.CharField(max_length=50)

    class NoEntitySet(Throwaway):
        name = models.CharField(max_length=50)

        class CDMS:
            fields = {"name": "name"}

    errors = {error.obj: error.msg for error in mapping_errors(isolated)}
    assert errors == {
        NoSpec: "class CDMS has no CDMS.entity_set.",
        NoEntitySet: "class CDMS has no CDMS.entity_set.",
    }
    assert all(error.hint for error in mapping_errors(isolated))


def test_the_fields_migrator_keeps_and_the_remote_key(isolated):
    class Account(Throwaway):
        name = models.CharField(max_length=50)
        remote_id = models.UUIDField(null=True)

        class CDMS:
            entity_set = "accounts"
            fields = {"name": "name", "cdms_etag": "versionnumber", "remote_id": "accountid"}

    assert sorted(error.msg for error in mapping_errors(isolated)) == [
        "class CDMS maps 'cdms_etag', which migrator keeps itself.",
        "class CDMS maps 'remote_id' to the remote key 'accountid' (that is cdms_pk).",
    ]
    assert Account.cdms.select == ["accountid", "modifiedon", "name"]


def test_mutual_foreign_keys_build_their_mappings(isolated):
    class Account(Throwaway):
        primary = models.ForeignKey(
            "Person", null=True, on_delete=models.SET_NULL, related_name="+"
        )

        class CDMS:
            entity_set = "accounts"
            fields = {"primary": "primarycontactid"}

    class Person(Throwaway):
        account = models.ForeignKey(Account, null=True, on_delete=models.SET_NULL)

        class CDMS:
            entity_set = "contacts"
            fields = {"account": Lookup("parentcustomerid_account", "_parentcustomerid_value")}

    assert mapping_errors(isolated) == []
    assert Person.cdms.get("account").remote == "_parentcustomerid_value"
    assert Account.cdms.get("primary_id").navigation == "primarycontactid"


# Converters --------------------------------------------------------------------------------------

CHOICES = [("retail", "Retail"), ("services", "Services")]
SECTORS = OptionSet({"retail": 1, "services": 2})


@pytest.fixture
def everything(isolated):
    """A synced model with one field of every type a user maps."""

    class Everything(Throwaway):
        char = models.CharField(max_length=20)
        char_null = models.CharField(max_length=20, null=True)
        text = models.TextField(blank=True)
        email = models.EmailField(blank=True)
        slug = models.SlugField(blank=True)
        url = models.URLField(blank=True)
        integer = models.IntegerField(null=True)
        small = models.SmallIntegerField(null=True)
        big = models.BigIntegerField(null=True)
        positive = models.PositiveIntegerField(null=True)
        decimal = models.DecimalField(max_digits=19, decimal_places=4, null=True)
        floating = models.FloatField(null=True)
        flag = models.BooleanField(null=True)
        moment = models.DateTimeField(null=True)
        day = models.DateField(null=True)
        time = models.TimeField(null=True)
        ident = models.UUIDField(null=True)
        sector = models.CharField(max_length=20, choices=CHOICES, null=True)

        class CDMS:
            entity_set = "new_everythings"
            fields = {
                "char": "new_char",
                "char_null": "new_charnull",
                "text": "new_text",
                "email": "emailaddress1",
                "slug": "new_slug",
                "url": "websiteurl",
                "integer": "new_integer",
                "small": "new_small",
                "big": "new_big",
                "positive": "new_positive",
                "decimal": "new_decimal",
                "floating": "new_float",
                "flag": "new_flag",
                "moment": "new_moment",
                "day": "new_day",
                "time": "new_time",
                "ident": "new_ident",
                "sector": ("industrycode", SECTORS),
            }

    assert Everything.cdms.errors == []
    yield Everything


def over_the_wire(value):
    """A value as the client writes it, read back as the client reads the Web API's JSON."""
    return codec.loads(codec.dumps({"v": value}))["v"]


ROUND_TRIPS = [
    # field, Python value, remote JSON value
    ("char", "Café [50%]_'x'", "Café [50%]_'x'"),
    ("char", "", None),  # a remote null is "" in a non-null text field
    ("char_null", "", ""),
    ("char_null", None, None),
    ("text", "line one\nline two 🚀", "line one\nline two 🚀"),
    ("email", "ada@example.com", "ada@example.com"),
    ("slug", "acme-holdings", "acme-holdings"),
    ("url", "https://acme.example/?q=1&r=2", "https://acme.example/?q=1&r=2"),
    ("integer", -7, -7),
    ("integer", None, None),
    ("small", 32767, 32767),
    ("big", 2**53 + 1, 2**53 + 1),
    ("positive", 0, 0),
    ("decimal", Decimal("25000000.0001"), Decimal("25000000.0001")),
    ("decimal", Decimal("-0.5000"), Decimal("-0.5")),
    ("decimal", None, None),
    ("floating", 0.1, Decimal("0.1")),  # the client reads JSON numbers as decimals
    ("floating", -1e300, Decimal("-1E+300")),
    ("flag", True, True),
    ("flag", False, False),
    ("flag", None, None),
    ("moment", dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC), "2024-02-29T23:59:59Z"),
    (
        "moment",
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "2024-01-02T03:04:05.123456Z",
    ),
    ("moment", None, None),
    ("day", dt.date(2000, 2, 29), "2000-02-29"),
    ("day", None, None),
    ("time", dt.time(13, 45), "13:45:00"),
    ("time", dt.time(0, 0, 1, 500), "00:00:01.000500"),
    ("time", None, None),
    (
        "ident",
        uuid.UUID("5f0c8e7e-2f55-4c55-9a43-6f9c1c0c0d01"),
        "5f0c8e7e-2f55-4c55-9a43-6f9c1c0c0d01",
    ),
    ("ident", None, None),
    ("sector", "retail", 1),
    ("sector", "services", 2),
    ("sector", None, None),
]


@pytest.mark.parametrize("name, value, remote", ROUND_TRIPS)
def test_values_round_trip(everything, name, value, remote):
    fm = everything.cdms.get(name)
    sent = over_the_wire(fm.to_remote(value))
    assert sent == remote
    assert type(sent) is type(remote)
    back = fm.to_python(sent)
    assert back == value
    assert type(back) is type(value)
    assert over_the_wire(fm.to_remote(fm.to_python(remote))) == remote


@pytest.mark.parametrize(
    "remote, expected",
    [
        ("2024-01-02T10:00:00+05:30", dt.datetime(2024, 1, 2, 4, 30, tzinfo=UTC)),
        ("2024-01-01T01:00:00-02:00", dt.datetime(2024, 1, 1, 3, 0, tzinfo=UTC)),
        ("2023-12-31T23:30:00-01:00", dt.datetime(2024, 1, 1, 0, 30, tzinfo=UTC)),
        ("2024-01-02T03:04:05Z", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05", dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # naive: UTC
        ("2024-01-02T03:04:05.5Z", dt.datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
    ],
)
def test_datetimes_are_read_as_utc(everything, remote, expected):
    value = everything.cdms.get("moment").to_python(remote)
    assert value == expected
    assert value.utcoffset() == dt.timedelta(0)
    assert value.tzinfo is UTC


@st.composite
def instants(draw) -> str:
    """ISO 8601 timestamps as a remote may write them: naive, ``Z``, or an offset; to the
    second, the millisecond or the microsecond."""
    moment = draw(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)))
    text = moment.isoformat(timespec=draw(st.sampled_from(["seconds", "milliseconds", "auto"])))
    minutes = draw(st.none() | st.integers(min_value=-14 * 60, max_value=14 * 60))
    if minutes is None:
        return text
    if minutes == 0 and draw(st.booleans()):
        return f"{text}Z"
    sign, minutes = "-" if minutes < 0 else "+", abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


@given(instants())
def test_instants_read_by_the_fast_parser_are_those_dateutil_reads(text):
    parsed = parse_instant(text)
    assert parsed == isoparse(text)
    assert parsed.utcoffset() == isoparse(text).utcoffset()


def test_an_instant_the_fast_parser_refuses_is_read_by_dateutil(everything):
    moment = everything.cdms.get("moment").to_python("2024-01-01T24:00:00Z")
    assert moment == dt.datetime(2024, 1, 2, tzinfo=UTC)


def test_an_aware_datetime_in_another_zone_is_written_in_utc(everything):
    fm = everything.cdms.get("moment")
    kolkata = dt.timezone(dt.timedelta(hours=5, minutes=30))
    moment = dt.datetime(2024, 1, 2, 10, 0, tzinfo=kolkata)
    assert over_the_wire(fm.to_remote(moment)) == "2024-01-02T04:30:00Z"


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_a_naive_datetime_goes_out_as_django_stores_it(everything, settings, zone):
    """In the current time zone, with Django's warning: the remote gets the instant the
    local row holds."""
    settings.TIME_ZONE = zone
    fm = everything.cdms.get("moment")
    naive = dt.datetime(2024, 1, 2, 10, 0)
    with pytest.warns(RuntimeWarning, match="naive datetime"):
        sent = fm.to_remote(naive)
    expected = "2024-01-02T10:00:00Z" if zone == "UTC" else "2024-01-02T15:00:00Z"
    assert over_the_wire(sent) == expected


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_a_date_given_a_datetime_goes_out_as_django_stores_it(everything, settings, zone):
    """The day in the current time zone, as Django's DateField takes it, not the day of the
    moment's own zone."""
    settings.TIME_ZONE = zone
    moment = dt.datetime(2024, 1, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    expected = timezone.localtime(moment).date()
    assert everything.cdms.get("day").to_remote(moment) == expected


def test_read_forms_the_web_api_also_sends(everything):
    get = everything.cdms.get
    assert get("day").to_python("2000-02-29T00:00:00Z") == dt.date(2000, 2, 29)
    assert get("decimal").to_python(1.1) == Decimal("1.1000")
    assert get("decimal").to_python(Decimal("1.23456")) == Decimal("1.2346")  # the field's scale
    assert get("integer").to_python(Decimal("12")) == 12
    assert get("floating").to_python(3) == 3.0
    assert get("text").to_python(None) == ""
    assert get("time").to_python("") is None
    assert get("sector").to_python(99) is None  # an option the mapping does not know


def test_values_assigned_loosely_are_written_as_their_type(everything):
    get = everything.cdms.get
    assert over_the_wire(get("decimal").to_remote(0.1)) == Decimal("0.1")
    assert over_the_wire(get("integer").to_remote("12")) == 12
    assert get("day").to_remote(dt.datetime(2000, 2, 29, 13, 0)) == dt.date(2000, 2, 29)


def test_an_option_set_value_it_does_not_know_is_a_clear_error(everything):
    with pytest.raises(ValueError, match=r"sector: 'wholesale' is not one of .*'retail'"):
        everything.cdms.get("sector").to_remote("wholesale")


@pytest.mark.parametrize(
    "field_class, converted",
    [
        (models.CharField, True),
        (models.TextField, True),
        (models.EmailField, True),
        (models.SlugField, True),
        (models.URLField, True),
        (models.IntegerField, True),
        (models.SmallIntegerField, True),
        (models.BigIntegerField, True),
        (models.PositiveIntegerField, True),
        (models.PositiveSmallIntegerField, True),
        (models.DecimalField, True),
        (models.FloatField, True),
        (models.BooleanField, True),
        (models.DateTimeField, True),
        (models.DateField, True),
        (models.TimeField, True),
        (models.UUIDField, True),
        (models.JSONField, False),
        (models.FileField, False),
        (models.BinaryField, False),
        (models.DurationField, False),
    ],
)
def test_converter_for_goes_by_the_field_class(field_class, converted):
    assert (converter_for(field_class()) is not None) is converted


# Foreign keys as lookups -------------------------------------------------------------------------


def test_a_foreign_key_maps_to_a_lookup():
    parent = Organisation.cdms.get("parent")
    assert (parent.is_lookup, parent.navigation, parent.remote) == (
        True,
        "parentaccountid",
        "_parentaccountid_value",
    )
    assert parent.target is Organisation
    assert Organisation.cdms.get("parent_id") is parent
    organisation = Contact.cdms.get("organisation")
    assert (organisation.navigation, organisation.remote) == (
        "parentcustomerid_account",
        "_parentcustomerid_value",
    )
    assert "_parentaccountid_value" in Organisation.cdms.select


def test_a_lookup_round_trips_through_the_remote(cdms_simulator):
    """Read: ``_parentaccountid_value`` becomes the local id of the parent's row. Write: the
    local id becomes ``parentaccountid@odata.bind`` with the parent's remote key."""
    holdings, widgets = demo_key("Acme Holdings"), demo_key("Acme Widgets")
    ada = demo_key("Ada Lovelace")
    child = Organisation.objects.get(cdms_pk=widgets)
    assert child.parent.cdms_pk == uuid.UUID(holdings)
    assert instances.payload(child, {"parent_id"}) == {
        "parentaccountid@odata.bind": f"/accounts({holdings})"
    }
    contact = Contact.objects.get(cdms_pk=ada)
    assert contact.organisation.cdms_pk == uuid.UUID(holdings)
    assert instances.payload(contact, {"organisation_id"}) == {
        "parentcustomerid_account@odata.bind": f"/accounts({holdings})"
    }
    contact.organisation = None
    assert instances.payload(contact, {"organisation_id"}) == {
        "parentcustomerid_account@odata.bind": None
    }


def test_the_mapping_is_built_once_per_model():
    assert Organisation.cdms is Organisation.cdms
    assert isinstance(Organisation.cdms, Mapping)
    assert Organisation.cdms is not Contact.cdms


# Migrations ------------------------------------------------------------------------------------


def test_the_example_apps_migrations_are_up_to_date():
    out = StringIO()
    call_command(
        "makemigrations", "core", "migrator", "secondapp", "--check", "--dry-run", stdout=out
    )
    assert "No changes detected" in out.getvalue()


def test_a_converter_of_ones_own_makes_a_filter_not_exact(isolated):
    """``OptionSet`` reads a value it does not know as null: a filter on its field may select
    other records than the local query (no ``$top``, no ``$count``); a field of its own that
    cannot hold null leaves no filter that tells the records the loader stores."""

    class Graded(Throwaway):
        grade = models.IntegerField(null=True)
        level = models.IntegerField(null=True)
        rank = models.IntegerField()

        class CDMS:
            entity_set = "accounts"
            fields = {
                "grade": ("industrycode", OptionSet({1: 1, 2: 2})),
                "level": "numberofemployees",
                "rank": "new_rank",
            }

    assert not translate(Graded.objects.filter(grade=1).query).exact
    assert not translate(Graded.objects.filter(grade__isnull=True).query).exact
    assert translate(Graded.objects.filter(level=1).query).exact
    assert [odata.render(c) for c in stored_only(Graded.cdms)] == ["new_rank ne null"]

    class Ranked(Throwaway):
        rank = models.IntegerField()

        class CDMS:
            entity_set = "accounts"
            fields = {"rank": ("new_rank", OptionSet({1: 1}))}

    assert stored_only(Ranked.cdms) is None
