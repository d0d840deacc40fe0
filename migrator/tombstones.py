"""Tombstones: the records the remote no longer has, whose local rows were deleted, with the
version each row held (``state.Tombstone``).

A page of records read before a deletion and written after it -- by a resync, or by another
request's read -- would bring the deleted row back, and it would stay until a later read
found the record gone. The page writer (``loader``) therefore leaves out every record whose
version is not above its tombstone's: a record created again under the same key has a
higher version, and is stored. Tombstones are written in the transaction of the local
delete, for the records this project deleted remotely and those the remote said were gone
(never for a row deleted locally only, whose record is still there), and are purged once
older than ``HORIZON`` by each resync that writes something (one that finds nothing writes
nothing, not even that). Both statements are raw: one runs for every page a read
writes, one for every delete."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.db import connections, models, router
from django.utils import timezone

from .state import Tombstone
from .upsert import select_by_keys

ETAG_VERSION = re.compile(r'W/"(\d+)"\Z')
#: How long a tombstone is kept: far longer than a page's read takes to be written.
HORIZON = dt.timedelta(hours=1)


def version_of(etag: str | None) -> int | None:
    """The version in a Dataverse ETag (``W/"<versionnumber>"``, raised by every write)."""
    match = ETAG_VERSION.match(etag or "")
    return int(match.group(1)) if match else None


def bury(model: type[models.Model], etags: dict[str, str]) -> None:
    """Note the records of ``etags`` (remote key -> the ETag its row held) as gone, in one
    statement. Rows whose ETag has no version are left out."""
    connection = connections[router.db_for_write(model)]
    key = Tombstone._meta.get_field("key")
    now = Tombstone._meta.get_field("buried").get_db_prep_value(timezone.now(), connection)
    rows = [
        (model.cdms.entity_set, key.get_db_prep_value(k, connection), version, now)
        for k, etag in etags.items()
        if (version := version_of(etag)) is not None
    ]
    if not rows:
        return
    table, quote = _table(connection), connection.ops.quote_name
    marks = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (entity_set, {quote('key')}, version, buried) VALUES {marks} "
            f"ON CONFLICT (entity_set, {quote('key')}) "
            "DO UPDATE SET version = EXCLUDED.version, buried = EXCLUDED.buried",
            [value for row in rows for value in row],
        )


def buried(model: type[models.Model], records: dict[str, dict[str, Any]]) -> set[str]:
    """The keys among ``records`` (remote key -> record) whose record is not newer than its
    tombstone: read before its row was deleted. The table's tombstones are read whole when
    there are fewer than records (one short statement when there are none), else by key."""
    if not records:
        return set()
    connection = connections[router.db_for_write(model)]
    table, quote = _table(connection), connection.ops.quote_name
    head = f"SELECT {quote('key')}, version FROM {table} WHERE entity_set = %s"
    entity_set = model.cdms.entity_set
    with connection.cursor() as cursor:
        cursor.execute(f"{head} LIMIT %s", [entity_set, len(records)])
        stones = cursor.fetchall()
    if len(stones) == len(records):  # perhaps more: those of these records
        key = Tombstone._meta.get_field("key")
        values = [key.get_db_prep_value(k, connection) for k in records]
        column = (quote("key"), key)
        stones = select_by_keys(connection, f"{head} AND", [entity_set], column, values)
    versions = {str(uuid.UUID(str(k))): version for k, version in stones}
    return {
        k
        for k, record in records.items()
        if k in versions
        and ((theirs := version_of(record.get("@odata.etag"))) is None or theirs <= versions[k])
    }


def purge(using: str, now: dt.datetime | None = None) -> int:
    """Delete the tombstones older than ``HORIZON``; returns how many."""
    limit = (now or timezone.now()) - HORIZON
    deleted, _ = Tombstone.objects.using(using).filter(buried__lt=limit).delete()
    return deleted


def _table(connection: Any) -> str:
    return connection.ops.quote_name(Tombstone._meta.db_table)
