"""One bulk ``INSERT ... ON CONFLICT (cdms_pk) DO UPDATE`` of the loader's rows, through the
connection's cursor: what ``bulk_create(update_conflicts=True)`` stores, without model
instances, and without Django's insert compiler preparing every value again per statement.

Every value still goes through its field's ``get_db_prep_save``, so it is stored exactly as
Django stores it. A new row takes the defaults of the fields the mapping does not fill, and
``now`` for ``auto_now``/``auto_now_add`` fields; an existing row keeps those but ``auto_now``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from typing import Any

from django.db import connections, models, router
from django.db.models.constants import OnConflict

KEY = "cdms_pk"
POSTGRESQL_PARAMETERS = 65535


def upsert(
    model: type[models.Model],
    rows: dict[str, dict[str, Any]],
    updated: list[str],
    now: dt.datetime,
) -> None:
    """Store ``rows`` (remote key -> values by attname, ``updated`` among them), creating the
    rows missing locally and updating ``updated`` (and ``auto_now`` fields) of the others."""
    if not rows:
        return
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field and not f.generated]
    updated = {*updated, *(f.attname for f in fields if getattr(f, "auto_now", False))}
    suffix = connection.ops.on_conflict_suffix_sql(
        fields,
        OnConflict.UPDATE,
        [f.column for f in fields if f.attname in updated],
        [meta.get_field(KEY).column],
    )
    # a value the same in every row (now, a constant default) is prepared once
    fills = [_filler(field, now, connection) for field in fields]
    table = connection.ops.quote_name(meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = _rows_per_statement(connection, len(fields))
    items = list(rows.items())
    with connection.cursor() as cursor:
        for start in range(0, len(items), per_statement):
            chunk = items[start : start + per_statement]
            params = []
            for key, values in chunk:
                row = {**values, KEY: key}
                for field, fill in zip(fields, fills, strict=True):
                    if field.attname in row:
                        params.append(field.get_db_prep_save(row[field.attname], connection))
                    elif callable(fill):
                        params.append(field.get_db_prep_save(fill(), connection))
                    else:
                        params.append(fill[0])
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES "
                f"{', '.join([row_marks] * len(chunk))} {suffix}",
                params,
            )


def _filler(field: models.Field, now: dt.datetime, connection: Any) -> Callable | tuple:
    """What a field a row's values leave out holds, as Django's ``pre_save`` gives it: a
    callable default, or a 1-tuple of the value prepared once (``now`` for ``auto_now`` and
    ``auto_now_add``, a constant default)."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        if isinstance(field, models.DateTimeField):
            value = now
        elif isinstance(field, models.DateField):
            value = now.date()
        else:
            value = now.time()
    elif callable(field.default):
        return field.get_default
    else:
        value = field.get_default()
    return (field.get_db_prep_save(value, connection),)


def _rows_per_statement(connection: Any, columns: int) -> int:
    """As many rows as one statement's bound parameters allow: SQLite's limit as compiled
    (Django assumes 999), else the backend's, else PostgreSQL's protocol limit."""
    limit = connection.features.max_query_params or POSTGRESQL_PARAMETERS
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, limit // columns)
