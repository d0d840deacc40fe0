"""What a careful engineer writes by hand for the results the ORM gives: the baseline of every
ORM figure. Reads page the records with the plain ``requests`` loop, store them with one
``INSERT ... ON CONFLICT (cdms_pk) DO UPDATE`` per page (see ``upsert``), then ask the local
database the same question with ``skip_cdms()``. Writes are the one raw request.

The mapping is the model's own declaration; the example project's accounts carry no parent
here, so the parent lookup is not resolved (one more query per page if it were)."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import requests
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cdms_api.simulator.testing import SimulatorHandle
from core.models import Organisation

from . import plain

BOOKKEEPING = ["cdms_pk", "cdms_etag", "cdms_modified", "created", "modified"]
MAPPED = {  # model field -> remote property, from the model's declaration; lookups left out
    name: remote
    for name, remote in Organisation.CDMS.fields.items()
    if not Organisation._meta.get_field(name).is_relation
}
SELECT = ",".join([*MAPPED.values(), "_parentaccountid_value", "modifiedon"])
NOT_UPDATED = {"cdms_pk", "created"}
BLANK_TEXT = {"website", "phone"}  # text fields that hold "" for the remote's null


class ByHand:
    def __init__(self, simulator: SimulatorHandle):
        self.session = simulator.session()
        self.base_url = simulator.base_url

    # reads -------------------------------------------------------------------------------
    def read(self, filter: str) -> list[dict]:
        """Every record matching ``filter``, page by page."""
        return self._read_all({"$select": SELECT, "$filter": filter})

    def read_top(self, filter: str, top: int, orderby: str | None = None) -> list[dict]:
        """The first ``top`` matching records, in one request."""
        params = {"$select": SELECT, "$filter": filter, "$top": str(top)}
        if orderby:
            params["$orderby"] = orderby
        return next(plain.pages(self.session, self.entity_url(), params, page_size=None))

    def count(self, filter: str) -> int:
        """How many records match, as the remote counts them (at most 5,000): ``$count`` with
        a page of one key (Dataverse advises against ``$top`` with ``$count``)."""
        params = {"$filter": filter, "$count": "true", "$select": "accountid"}
        headers = {"Prefer": "odata.maxpagesize=1"}
        response = self._send("GET", self.entity_url(), params=params, headers=headers)
        return response.json()["@odata.count"]

    def get(self, key: str, etag: str | None = None) -> dict | None:
        """The record; with ``etag`` (``If-None-Match``), None when it still has it (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        response = self._send(
            "GET", self.entity_url(key), params={"$select": SELECT}, headers=headers
        )
        return None if response.status_code == 304 else response.json()

    def etags(self, keys: Sequence[str]) -> dict[str, str]:
        """The current ETag of each record, in one read."""
        values = ",".join(f"'{key}'" for key in keys)
        keyed = f"Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=[{values}])"
        records = self._read_all({"$select": "accountid", "$filter": keyed})
        return {r["accountid"]: r["@odata.etag"] for r in records}

    def _read_all(self, params: dict[str, str]) -> list[dict]:
        return [r for page in plain.pages(self.session, self.entity_url(), params) for r in page]

    # writes ------------------------------------------------------------------------------
    def update(self, key: str, data: dict[str, Any], etag: str) -> dict:
        """PATCH with ``If-Match``, the record returned (its new ETag is what a cache keeps)."""
        headers = {"If-Match": etag, "Prefer": "return=representation"}
        return self._send("PATCH", self.entity_url(key), json=data, headers=headers).json()

    def delete(self, key: str, etag: str) -> None:
        self._send("DELETE", self.entity_url(key), headers={"If-Match": etag})

    def _send(self, method: str, url: str, **options: Any) -> requests.Response:
        response = self.session.request(method, url, timeout=60, **options)
        response.raise_for_status()
        return response

    def entity_url(self, key: str | None = None) -> str:
        return f"{self.base_url}accounts" + (f"({key})" if key else "")


# the local side ------------------------------------------------------------------------------
def upsert(records: list[dict]) -> None:
    """Store the records in the model's table: on PostgreSQL one statement per page, its
    values passed as one array per column (``unnest``); on SQLite a multi-row ``VALUES`` per
    as many rows as its limit of bound parameters allows."""
    if not records:
        return
    meta = Organisation._meta
    fields = [meta.get_field(name) for name in [*BOOKKEEPING, *MAPPED]]
    columns = [connection.ops.quote_name(field.column) for field in fields]
    updated = [c for f, c in zip(fields, columns, strict=True) if f.name not in NOT_UPDATED]
    key_column = connection.ops.quote_name(meta.get_field("cdms_pk").column)
    head = f"INSERT INTO {connection.ops.quote_name(meta.db_table)} ({', '.join(columns)}) "
    tail = f" ON CONFLICT ({key_column}) DO UPDATE SET " + ", ".join(
        f"{c} = excluded.{c}" for c in updated
    )
    rows = _rows(records)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
            cursor.execute(
                f"{head}SELECT * FROM unnest({arrays}){tail}",
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        row_marks = "(" + ", ".join(["%s"] * len(columns)) + ")"
        per_statement = max(1, _sqlite_variables() // len(columns))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(
                f"{head}VALUES {', '.join([row_marks] * len(chunk))}{tail}",
                [value for row in chunk for value in row],
            )


def _rows(records: list[dict]) -> list[tuple]:
    adapt = connection.ops.adapt_datetimefield_value
    now = adapt(timezone.now())
    sqlite = connection.vendor == "sqlite"  # Django keeps a UUIDField there as 32 hex digits
    rows = []
    for record in records:
        key = uuid.UUID(record["accountid"]).hex if sqlite else record["accountid"]
        modified = adapt(dt.datetime.fromisoformat(record["modifiedon"]))
        values = [key, record["@odata.etag"], modified, now, now]
        for name, remote in MAPPED.items():
            value = record[remote]
            values.append("" if value is None and name in BLANK_TEXT else value)
        rows.append(tuple(values))
    return rows


def _sqlite_variables() -> int:
    """How many bound parameters one SQLite statement may have."""
    connection.ensure_connection()
    return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


def local(queryset: QuerySet) -> list:
    """The same query, answered by the local database alone."""
    return list(queryset.skip_cdms())
