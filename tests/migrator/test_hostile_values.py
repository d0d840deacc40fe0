"""Values at the limits of every converter, written through the ORM: each either round-trips
(the CRM, the local row and the instance agree; a fresh read brings back the same; a filter on
it finds it) or is refused with a clear error that leaves nothing behind, neither a record nor
a row. ``Sample`` has a column of every type (``tests.secondapp``)."""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import DatabaseError, transaction

from cdms_api.errors import CDMSError
from migrator.instances import stored_as
from tests.secondapp.models import Sample

UTC = dt.UTC
FIELDS = [
    "name",
    "rank",
    "count",
    "big",
    "amount",
    "price",
    "ratio",
    "flag",
    "day",
    "moment",
    "clock",
]

ROUND_TRIPS = [
    ("count", -(2**31)),
    ("count", 2**31 - 1),
    ("big", -(2**63)),
    ("big", 2**63 - 1),
    ("rank", 0),
    ("amount", Decimal("9999999999.99")),  # the column's precision: 12 digits, 2 after
    ("amount", Decimal("-9999999999.99")),
    ("amount", Decimal("0.01")),
    # 15 significant digits: what SQLite (which keeps decimals as floating point) holds exactly
    ("price", Decimal("12345678901.2345")),
    ("price", Decimal("-0.0001")),
    ("ratio", 1e-300),
    ("ratio", -1.7976931348623157e308),
    ("ratio", 0.1),
    ("flag", True),
    ("flag", False),
    ("day", dt.date(1753, 1, 1)),  # the earliest the CRM holds
    ("day", dt.date(9999, 12, 31)),
    ("day", dt.date(2024, 2, 29)),
    ("moment", dt.datetime(1753, 1, 1, tzinfo=UTC)),
    ("moment", dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("moment", dt.datetime(2024, 7, 1, 9, 30, tzinfo=ZoneInfo("Asia/Kolkata"))),
    ("moment", dt.datetime(2024, 3, 31, 1, 30, tzinfo=ZoneInfo("Europe/London"))),  # in the gap
    ("clock", dt.time(0, 0)),
    ("clock", dt.time(23, 59, 59)),
    ("name", "Rocket \U0001f680 \U0001d11e Ltd"),  # 4-byte characters
    ("name", "\U0001f680" * 50),  # the column's length in UTF-16 units: two each
    ("name", "Straße \u0130stanbul \u0131 \u017f \u212a"),  # case-folding specials
    ("name", "100% [a]_b 'quoted' \"double\" \\back"),
    ("name", ""),
]


def created(field: str, value) -> Sample:
    values = {"name": "Limits", "rank": 1, field: value}
    return Sample.objects.create(**values)


def as_the_crm_stores(field: str, value):
    """What a value reads back as: the CRM keeps instants in UTC, in whole seconds; other
    values as sent. (An instant compares unequal across zones when one is in a gap.)"""
    if field == "moment":
        return value.astimezone(UTC).replace(microsecond=0)
    return value


@pytest.mark.parametrize(("field", "value"), ROUND_TRIPS, ids=repr)
def test_a_value_at_the_limits_round_trips(crm, field, value):
    sample = created(field, value)
    expected = as_the_crm_stores(field, value)
    assert getattr(sample, field) == expected
    crm.assert_in_sync(Sample, str(sample.cdms_pk))
    row = Sample.objects.skip_cdms().get(pk=sample.pk)
    assert getattr(row, field) == expected

    Sample.objects.skip_cdms().all().delete()  # a fresh read brings it back as it was
    fresh = Sample.objects.get(cdms_pk=sample.cdms_pk)
    assert {f: getattr(fresh, f) for f in FIELDS} == {f: getattr(row, f) for f in FIELDS}
    if field not in ("ratio",):  # equality of floats: no filter promises it
        assert [s.pk for s in Sample.objects.filter(**{field: expected})] == [fresh.pk]


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("amount", Decimal("1.005"), Decimal("1.00")),  # the CRM rounds half to even
        ("amount", Decimal("1.015"), Decimal("1.02")),
        ("moment", dt.datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=UTC), None),
        ("moment", dt.datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC), None),
    ],
    ids=repr,
)
def test_a_value_the_crm_stores_otherwise_is_stored_as_it_did(crm, field, value, stored):
    sample = created(field, value)
    record = crm.client.get("new_samples", sample.cdms_pk)
    stored = stored if stored is not None else as_the_crm_stores(field, value)
    assert getattr(sample, field) == stored
    assert getattr(Sample.objects.skip_cdms().get(pk=sample.pk), field) == stored
    crm.assert_in_sync(Sample, str(sample.cdms_pk))
    assert record is not None


STORED_OTHERWISE = [
    ("moment", dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "2024-05-01T12:00:00Z"),
    ("amount", Decimal("1.2345"), Decimal("1.23")),
]


@pytest.mark.parametrize(("field", "value", "stored"), STORED_OTHERWISE, ids=repr)
@pytest.mark.parametrize("write", ["create", "save", "bulk_update"])
def test_a_write_applied_with_its_answer_lost_is_recognised_in_the_form_the_crm_stored(
    crm, cdms_simulator, field, value, stored, write
):
    """The CRM keeps whole seconds and rounds to its column's scale: the record read back to
    find out whether the write was applied holds the value so, not as sent."""
    sample = None if write == "create" else created("rank", 2)
    path = r"/new_samples$" if write == "create" else r"/new_samples\(|/\$batch"
    method = "PATCH" if write == "save" else "POST"
    cdms_simulator.add_faults(
        {"method": method, "path": path, "times": 1, "action": "apply_then_fail", "status": 503}
    )
    if write == "create":
        sample = created(field, value)
    else:
        setattr(sample, field, value)
        if write == "save":
            sample.save()
        else:
            Sample.objects.bulk_update([sample], [field])
    record = crm.client.get("new_samples", sample.cdms_pk)
    assert record[f"new_{field}"] == stored
    crm.assert_in_sync(Sample, str(sample.cdms_pk))
    assert len(crm.find("new_samples", "new_name", "Limits")) == 1


@pytest.mark.parametrize(
    ("sent", "stored", "same"),
    [
        (Decimal("1.2345"), Decimal("1.23"), True),
        (Decimal("1.235"), Decimal("1.24"), True),  # half: either way of rounding it
        (Decimal("1.2345"), Decimal("1.24"), False),
        (Decimal("1.2"), Decimal("1.23"), False),  # not a rounding: finer than what was sent
        (Decimal("5.4"), Decimal("5"), True),
        (
            dt.datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=UTC),
            dt.datetime(2024, 1, 1, 12, 0, tzinfo=UTC),
            True,
        ),
        (
            dt.datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
            dt.datetime(2024, 1, 1, 12, 0, 1, tzinfo=UTC),
            True,
        ),
        (
            dt.datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
            dt.datetime(2024, 1, 1, 12, 0, 2, tzinfo=UTC),
            False,
        ),
        ("a", "a ", False),
    ],
    ids=repr,
)
def test_a_value_as_the_crm_stores_it(sent, stored, same):
    assert stored_as(sent, stored) is same


def test_a_naive_datetime_is_taken_in_the_current_time_zone(crm, settings):
    settings.TIME_ZONE = "America/New_York"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # Django's "naive datetime" warning
        sample = created("moment", dt.datetime(2024, 7, 1, 9, 0))
    record = crm.client.get("new_samples", sample.cdms_pk)
    assert record["new_moment"] == "2024-07-01T13:00:00Z"
    assert sample.moment == dt.datetime(2024, 7, 1, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("count", 2**31),
        ("count", -(2**31) - 1),
        ("amount", Decimal("10000000000.00")),  # 13 digits: beyond the column's precision
        ("name", "x" * 101),  # beyond the column's length
        ("name", "\U0001f680" * 51),  # 51 characters, 102 UTF-16 units: beyond it too
        ("clock", dt.time(12, 0, 0, 5)),  # with microseconds: longer than the 8-character text
        ("ratio", float("nan")),
        ("day", dt.date(1752, 12, 31)),  # before the earliest date the CRM holds
        ("moment", dt.datetime(1752, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
    ids=repr,
)
def test_a_value_beyond_the_remote_type_is_refused_and_leaves_nothing(crm, field, value):
    with pytest.raises((CDMSError, DatabaseError, ValueError)), transaction.atomic():
        created(field, value)
    assert not Sample.objects.skip_cdms().exists()
    assert crm.find("new_samples", "new_name", "Limits") == []
