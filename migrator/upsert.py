"""One bulk ``INSERT ... ON CONFLICT (cdms_pk) DO UPDATE`` of the loader's rows, through the
connection's cursor: what ``bulk_create(update_conflicts=True)`` stores, without model
instances, and without Django's insert compiler preparing every value again per statement
(the ETags the rows hold read first, by ``stored_etags``). On PostgreSQL the values go as
one array per column (``unnest``); elsewhere as a multi-row ``VALUES`` of as many rows as the
bound parameters allow. ``insert_new`` is the same insert with ``ON CONFLICT (cdms_pk) DO
NOTHING``, returning the keys of the rows it inserted.

Every value is stored exactly as Django stores it: through its field's ``get_db_prep_save``,
but for the values that Django would store as they are (``AS_THEY_ARE``). A new row takes
the defaults of the fields the mapping does not fill, and ``now`` for ``auto_now``/
``auto_now_add`` fields; an existing row keeps those but ``auto_now``.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from typing import Any

from django.db import connections, models, router
from django.db.models.constants import OnConflict

KEY = "cdms_pk"
ETAG = "cdms_etag"
#: The field classes (exactly these, not their subclasses, which may prepare values their own
#: way) whose ``get_db_prep_save`` gives values of these types back as they are, where the
#: backend does not adapt them (``_kept``).
AS_THEY_ARE: dict[type[models.Field], tuple[type, ...]] = {
    models.CharField: (str, type(None)),
    models.TextField: (str, type(None)),
    models.IntegerField: (int, type(None)),
    models.BigIntegerField: (int, type(None)),
    models.SmallIntegerField: (int, type(None)),
    models.BooleanField: (bool, type(None)),
}
_SAMPLES = {str: "", int: 0, bool: False, type(None): None}
_MISSING = object()  # a field a row's values leave out


def upsert(
    model: type[models.Model],
    rows: dict[str, dict[str, Any]],
    updated: list[str],
    now: dt.datetime,
) -> None:
    """Store ``rows`` (remote key -> values by attname, ``updated`` among them), creating the
    rows missing locally and updating ``updated`` (and ``auto_now`` fields) of the others."""
    if rows:
        _upsert(model, rows, updated, now, OnConflict.UPDATE)


def insert_new(
    model: type[models.Model], rows: dict[str, dict[str, Any]], now: dt.datetime
) -> set[str]:
    """Insert ``rows`` as ``upsert`` creates them, leaving out those whose row exists (another
    transaction inserted it since the caller looked: on PostgreSQL one that committed while
    this one waited for it, on SQLite one that committed before this one took the database's
    lock); returns the keys of the rows inserted. Where ``returns_inserted_keys`` only."""
    if not rows:
        return set()
    return _upsert(model, rows, [], now, OnConflict.IGNORE)


def _upsert(
    model: type[models.Model],
    rows: dict[str, dict[str, Any]],
    updated: list[str],
    now: dt.datetime,
    on_conflict: OnConflict,
) -> set[str]:
    connection = connections[router.db_for_write(model)]
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field and not f.generated]
    updated = {*updated, *(f.attname for f in fields if getattr(f, "auto_now", False))}
    column = meta.get_field(KEY).column
    key = connection.ops.quote_name(column)
    if on_conflict is OnConflict.IGNORE:  # a row of the key only: any other error is raised
        suffix = f"ON CONFLICT ({key}) DO NOTHING"
    else:
        suffix = connection.ops.on_conflict_suffix_sql(
            fields, on_conflict, [f.column for f in fields if f.attname in updated], [column]
        )
    keys, values = list(rows), list(rows.values())
    prepared = [  # one list per column
        _column(
            field,
            keys if field.attname == KEY else [row.get(field.attname, _MISSING) for row in values],
            now,
            connection,
        )
        for field in fields
    ]
    by_value = {}  # the keys of the rows ``insert_new`` inserts, by their prepared value
    if on_conflict is OnConflict.IGNORE:
        by_value = dict(zip(prepared[fields.index(meta.get_field(KEY))], keys, strict=True))
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    head = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({columns})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # one statement, one array per column
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
            if on_conflict is OnConflict.UPDATE:
                cursor.execute(f"{head} SELECT * FROM unnest({arrays}) {suffix}", prepared)
                return set(rows)
            cursor.execute(
                f"{head} SELECT * FROM unnest({arrays}) {suffix} RETURNING {key}", prepared
            )
            return {by_value[value] for (value,) in cursor.fetchall()}
        by_row = list(zip(*prepared, strict=True))
        row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
        per_statement = _rows_per_statement(connection, len(fields))
        returning = f" RETURNING {key}" if on_conflict is OnConflict.IGNORE else ""
        inserted = set() if returning else set(rows)
        for start in range(0, len(by_row), per_statement):
            chunk = by_row[start : start + per_statement]
            cursor.execute(
                f"{head} VALUES {', '.join([row_marks] * len(chunk))} {suffix}{returning}",
                [value for row in chunk for value in row],
            )
            if returning:
                inserted.update(by_value[value] for (value,) in cursor.fetchall())
    return inserted


def returns_inserted_keys(connection: Any) -> bool:
    """Whether ``insert_new`` can run here and tell the rows it inserted: ``ON CONFLICT
    (cdms_pk)`` and ``RETURNING`` (PostgreSQL, SQLite 3.35 and later)."""
    features = connection.features
    return features.supports_update_conflicts_with_target and (
        features.can_return_rows_from_bulk_insert
    )


def stored_etags(
    model: type[models.Model], keys: list[str], *, lock: bool = False
) -> dict[str, str]:
    """The ETags the rows of ``keys`` hold (remote key -> ETag, for the rows stored). With
    ``lock``, on a database with row locks, the rows are also locked, in their primary key's
    order."""
    if not keys:
        return {}
    connection = connections[router.db_for_write(model)]
    meta, quote = model._meta, connection.ops.quote_name
    key = meta.get_field(KEY)
    table = quote(meta.db_table)
    column = f"{table}.{quote(key.column)}"
    suffix = ""
    if lock and connection.features.has_select_for_update:
        suffix = f" ORDER BY {table}.{quote(meta.pk.column)} ASC FOR UPDATE"
    by_value = {key.get_db_prep_value(k, connection): k for k in keys}
    rows = select_by_keys(
        connection,
        f"SELECT {column}, {table}.{quote(meta.get_field(ETAG).column)} FROM {table} WHERE",
        [],
        (column, key),
        list(by_value),
        suffix,
    )
    return {by_value[value]: etag for value, etag in rows}


def select_by_keys(
    connection: Any,
    head: str,
    params: list,
    column: tuple[str, models.Field],
    values: list,
    suffix: str = "",
) -> list[tuple]:
    """The rows of ``head`` (``SELECT ... WHERE [conditions AND]``, with ``params``) whose
    ``column`` (its SQL and its field) is among ``values`` (prepared for the database): on
    PostgreSQL in one statement, the values as one array; elsewhere in as many statements as
    the limit of bound parameters needs."""
    sql, field = column
    if connection.vendor == "postgresql":
        array = f"%s::{field.db_type(connection)}[]"
        statements = [(f"{head} {sql} = ANY({array}){suffix}", [*params, values])]
    else:
        per_statement = max(1, _rows_per_statement(connection, 1) - len(params))
        chunks = (values[i : i + per_statement] for i in range(0, len(values), per_statement))
        statements = [
            (f"{head} {sql} IN ({', '.join(['%s'] * len(chunk))}){suffix}", [*params, *chunk])
            for chunk in chunks
        ]
    rows: list[tuple] = []
    with connection.cursor() as cursor:
        for statement, arguments in statements:
            cursor.execute(statement, arguments)
            rows.extend(cursor.fetchall())
    return rows


def _column(field: models.Field, values: list, now: dt.datetime, connection: Any) -> list:
    """One column's values, prepared to be stored; ``_MISSING`` ones take what a new row
    takes (``_filler``)."""
    kept = _kept(field, connection)
    prepare = field.get_db_prep_save
    column = [
        value if type(value) in kept or value is _MISSING else prepare(value, connection)
        for value in values
    ]
    if any(value is _MISSING for value in column):
        # a value the same in every row (now, a constant default) is prepared once
        fill = _filler(field, now, connection)
        column = [
            (prepare(fill(), connection) if callable(fill) else fill[0])
            if value is _MISSING
            else value
            for value in column
        ]
    return column


def _kept(field: models.Field, connection: Any) -> tuple[type, ...]:
    """The types of ``AS_THEY_ARE`` whose values the field's preparation leaves as they are
    on this connection (PostgreSQL's driver takes whole numbers in types of its own, which
    Django wraps them in)."""
    return tuple(
        kind
        for kind in AS_THEY_ARE.get(type(field), ())
        if type(field.get_db_prep_save(_SAMPLES[kind], connection)) is kind
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
    (Django assumes 999), else the backend's."""
    limit = connection.features.max_query_params or 65535
    if connection.vendor == "sqlite":
        connection.ensure_connection()
        limit = connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return max(1, limit // columns)
