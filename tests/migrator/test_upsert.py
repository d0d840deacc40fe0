"""The loader's bulk upsert stores what Django's own save stores: values at each type's limits,
those it passes as they are (text, whole numbers, booleans of their own type) and those of
another type that Django converts first."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from migrator.upsert import stored_etags, upsert
from tests.secondapp.models import Sample

COLUMNS = ["name", "rank", "count", "big", "flag"]
LIMITS = [
    {"name": "", "rank": -(2**31), "count": None, "big": -(2**63), "flag": False},
    {"name": "x" * 100, "rank": 2**31 - 1, "count": 0, "big": 2**63 - 1, "flag": True},
    {"name": 'O\'Brien "quoted" %s ; --', "rank": 0, "count": -1, "big": None, "flag": None},
    {"name": "ünïcödé 𝄞 \t\n", "rank": 1, "count": 2**31 - 1, "big": 0, "flag": True},
    # another type than the column's: converted as Django converts it
    {"name": 12, "rank": True, "count": False, "big": "42", "flag": "False"},
]


def stored(key: uuid.UUID) -> tuple:
    """The row's values as the database holds them: as the driver reads them, and as text
    (which the driver's own conversions leave alone)."""
    field = Sample._meta.get_field("cdms_pk")
    quoted = [connection.ops.quote_name(c) for c in COLUMNS]
    columns = ", ".join([*quoted, *(f"CAST({c} AS TEXT)" for c in quoted)])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns} FROM {connection.ops.quote_name(Sample._meta.db_table)} "
            f"WHERE {connection.ops.quote_name(field.column)} = %s",
            [field.get_db_prep_value(key, connection)],
        )
        return cursor.fetchone()


def saved_by_django(values: dict) -> tuple:
    sample = Sample(cdms_pk=uuid.uuid4(), **values)
    sample.save(skip_cdms=True)
    return stored(sample.cdms_pk)


@pytest.mark.parametrize("values", LIMITS)
def test_a_new_row_holds_what_djangos_save_stores(values):
    key = uuid.uuid4()
    upsert(Sample, {str(key): values}, COLUMNS, timezone.now())
    assert stored(key) == saved_by_django(values)


@pytest.mark.parametrize("values", LIMITS)
def test_an_updated_row_holds_what_djangos_save_stores(values):
    key = uuid.uuid4()
    before = {"name": "before", "rank": 5, "count": 5, "big": 5, "flag": None}
    upsert(Sample, {str(key): before}, COLUMNS, timezone.now())
    upsert(Sample, {str(key): values}, COLUMNS, timezone.now())
    assert stored(key) == saved_by_django(values)


def test_rows_of_several_values_at_once_each_hold_their_own():
    keys = [uuid.uuid4() for _ in LIMITS]
    upsert(Sample, dict(zip(map(str, keys), LIMITS, strict=True)), COLUMNS, timezone.now())
    assert [stored(key) for key in keys] == [saved_by_django(values) for values in LIMITS]


def test_stored_etags_of_more_keys_than_a_statement_binds():
    """Past SQLite's limit of bound parameters (32,766 as compiled here), more statements; on
    PostgreSQL the keys go as one array."""
    stored_keys = [uuid.uuid4() for _ in range(3)]
    upsert(Sample, {str(k): {"name": "s", "rank": 1} for k in stored_keys}, [], timezone.now())
    asked = [str(uuid.uuid4()) for _ in range(40_000)] + [str(k) for k in stored_keys]
    etags = stored_etags(Sample, asked, lock=True)
    assert etags == {str(k): "" for k in stored_keys}
