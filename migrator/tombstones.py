"""Tombstones: the records the remote no longer has, whose local rows were deleted, with the
version each row held (``state.Tombstone``).

A page of records read before a deletion and written after it -- by a resync, or by another
request's read -- would bring the deleted row back, and it would stay until a later read
found the record gone. The page writer (``loader``) therefore leaves out every record whose
version is not above its tombstone's: a record created again under the same key has a
higher version, and is stored. Tombstones are written in the transaction of the local
delete, for the records this project deleted remotely and those the remote said were gone
(never for a row deleted locally only, whose record is still there), and are purged by each
resync once older than ``HORIZON``."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.db import models, router
from django.utils import timezone

from .state import Tombstone

ETAG_VERSION = re.compile(r'W/"(\d+)"\Z')
#: How long a tombstone is kept: far longer than a page's read takes to be written.
HORIZON = dt.timedelta(hours=1)


def version_of(etag: str | None) -> int | None:
    """The version in a Dataverse ETag (``W/"<versionnumber>"``, raised by every write)."""
    match = ETAG_VERSION.match(etag or "")
    return int(match.group(1)) if match else None


def bury(model: type[models.Model], etags: dict[str, str]) -> None:
    """Note the records of ``etags`` (remote key -> the ETag its row held) as gone; one
    statement. Rows whose ETag has no version are left out."""
    now = timezone.now()
    stones = [
        Tombstone(entity_set=model.cdms.entity_set, key=key, version=version, buried=now)
        for key, etag in etags.items()
        if (version := version_of(etag)) is not None
    ]
    if stones:
        Tombstone.objects.using(router.db_for_write(model)).bulk_create(
            stones,
            update_conflicts=True,
            unique_fields=["entity_set", "key"],
            update_fields=["version", "buried"],
        )


def buried(model: type[models.Model], records: dict[str, dict[str, Any]]) -> set[str]:
    """The keys among ``records`` (remote key -> record) whose record is not newer than its
    tombstone: read before the row was deleted."""
    stones = (
        Tombstone.objects.using(router.db_for_write(model))
        .filter(entity_set=model.cdms.entity_set, key__in=[uuid.UUID(k) for k in records])
        .values_list("key", "version")
    )
    return {
        key
        for key, version in ((str(k), v) for k, v in stones)
        if (theirs := version_of(records[key].get("@odata.etag"))) is None or theirs <= version
    }


def purge(using: str, now: dt.datetime | None = None) -> int:
    """Delete the tombstones older than ``HORIZON``; returns how many."""
    limit = (now or timezone.now()) - HORIZON
    deleted, _ = Tombstone.objects.using(using).filter(buried__lt=limit).delete()
    return deleted
