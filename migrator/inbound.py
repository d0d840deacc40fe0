"""Inbound pages: remote records, and the keys of deleted ones, written locally one page per
transaction through the loader (``loader.load``), firing the signals of
``migrator.signals``. Resync writes every page through here; so can any reader of the remote.

A page never overwrites a row with an older version of its record: between the remote read
and the local write, a user's save may have written a newer one. The rows of the page are
locked (``SELECT ... FOR UPDATE``) and each record is compared with the row: by the version in
the ETag (Dataverse's ``W/"<versionnumber>"``, which every write raises), or, when either has
none, by ``modifiedon``; an older record is skipped. A user's save that waits for the lock
writes after the page, and stores what the remote returned."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import models, transaction

from . import local, signals
from .loader import load, noting_writes, older
from .tombstones import bury

DELETE_CHUNK = 1000


@dataclass
class Written:
    """What a page changed locally, by remote key; ``stale``: records older than the row."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stale: int = 0

    def __len__(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted)


def write_page(
    model: type[models.Model], records: list[dict[str, Any]], deleted: Iterable[str] = ()
) -> Written:
    """Write a page of remote records and delete the rows of the ``deleted`` keys, in one
    transaction (nested in the caller's, if any)."""
    key_name = model.cdms.key
    by_key = {_key(record[key_name]): record for record in records}
    with signals.inbound(), transaction.atomic():
        stored = {
            str(key): (etag, modified)
            for key, etag, modified in local.rows(model)
            .select_for_update()
            .filter(cdms_pk__in=list(by_key))
            .order_by("pk")  # the order every page writer locks rows in (``loader``)
            .values_list("cdms_pk", "cdms_etag", "cdms_modified")
        }
        fresh = {k: r for k, r in by_key.items() if not older(r, stored.get(k))}
        with noting_writes() as noted:
            if fresh:
                load(model, list(fresh.values()))
        wrote = noted.get(model, set())  # not those unchanged, nor those deleted since read
        written = Written(stale=len(by_key) - len(fresh))
        for key in fresh:
            if key in wrote:
                (written.updated if key in stored else written.created).append(key)
        _announce_saves(model, written)
        written.deleted = _delete(model, {_key(k) for k in deleted} - by_key.keys())
        _announce_page(model, written)
    return written


def delete_rows(model: type[models.Model], rows: models.QuerySet) -> int:
    """Delete the rows of a queryset as inbound deletions, a chunk per transaction, in
    constant memory; returns how many were deleted."""
    total = 0
    while chunk := [str(k) for k in rows.values_list("cdms_pk", flat=True)[:DELETE_CHUNK]]:
        with signals.inbound(), transaction.atomic():
            written = Written(deleted=_delete(model, set(chunk)))
            _announce_page(model, written)
        if not written.deleted:
            break  # the rows went meanwhile, and nothing else is left to find
        total += len(written.deleted)
    return total


def _delete(model: type[models.Model], keys: set[str]) -> list[str]:
    """Delete through Django's collector: pre/post_delete fire, cascades apply."""
    if not keys:
        return []
    rows = local.rows(model).filter(cdms_pk__in=sorted(keys))
    found = {str(k): etag for k, etag in rows.values_list("cdms_pk", "cdms_etag")}
    if found:
        with local.local_only():  # the rows pointing at them, as stored: on_delete applies
            rows.delete()
        bury(model, found)
    return list(found)


def _announce_saves(model: type[models.Model], written: Written) -> None:
    changed = written.created + written.updated
    if not changed or not models.signals.post_save.has_listeners(model):
        return
    created = set(written.created)
    for instance in local.rows(model).filter(cdms_pk__in=changed):
        models.signals.post_save.send(
            sender=model,
            instance=instance,
            created=str(instance.cdms_pk) in created,
            update_fields=None,
            raw=False,
            using=instance._state.db,
            cdms_sync=True,
        )


def _announce_page(model: type[models.Model], written: Written) -> None:
    if written:
        transaction.on_commit(
            partial(
                signals.records_synced.send,
                sender=model,
                created=written.created,
                updated=written.updated,
                deleted=written.deleted,
            )
        )


def _key(value: Any) -> str:
    return str(uuid.UUID(str(value)))
