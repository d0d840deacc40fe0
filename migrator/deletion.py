"""Deletes of synced rows, on both sides: ``obj.delete()`` and ``qs.delete()`` (so the admin's
"delete selected"), cascades included.

Django's own deletion runs first, locally, in the local transaction: its collector finds the
rows pointing at the ones deleted (as stored locally), applies ``on_delete``, sends the
signals and deletes. Each synced row it deletes is noted by a ``pre_delete`` receiver (which
also keeps Django from deleting synced rows without loading them). Then their records are
deleted remotely with ``If-Match`` on their ETags: one ``DELETE`` for one row, else one
``$batch`` per 1,000 (children first, as Django deletes them); a record already gone (the
CRM's own cascade may have deleted it) is done. Inside ``migrator.atomic()`` the deletes join
the block's changeset instead.

The synced rows Django unlinks locally (``on_delete=SET_NULL``) are read again once the
records are deleted, one read per model: the CRM clears their lookups itself (their ETags
change), or deletes them by a cascade of its own.

When every remote delete failed, the local transaction rolls back and the error is raised.
When some failed, it rolls back too, and the local side is then brought in step with what
happened remotely: the records whose delete failed are read again (a cascaded one may be
gone, or its lookup cleared), the rows of those deleted are deleted locally (Django's
deletion again, its signals with it), and ``BulkWriteError`` lists the failures."""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import pre_delete

from cdms_api.errors import BulkWriteError

from . import local
from .batches import Kind, RemoteWrite, send
from .sync import recheck
from .writes import remove

if TYPE_CHECKING:
    from .models import CDMSModel

T = TypeVar("T")
_noted: contextvars.ContextVar[list[RemoteWrite] | None] = contextvars.ContextVar(
    "cdms_deleting", default=None
)
_unlinked: contextvars.ContextVar[dict[type, set[str]] | None] = contextvars.ContextVar(
    "cdms_unlinked", default=None
)


class _PartlyDone(Exception):
    """Some remote deletes failed: the local transaction is rolled back, then redone."""


def follow(model: type[CDMSModel]) -> None:
    """Note the deletes of ``model``'s rows (every synced model, as its class is made)."""
    pre_delete.connect(_note, sender=model, weak=False, dispatch_uid=f"cdms-delete-{id(model)}")


def _note(sender: type[CDMSModel], instance: CDMSModel, **kwargs: Any) -> None:
    noted = _noted.get()
    if noted is not None and instance.cdms_pk is not None and sender.cdms.entity_set:
        noted.append(
            RemoteWrite(
                Kind.DELETE,
                sender,
                str(instance.cdms_pk),
                etag=instance.cdms_etag or None,
                target=instance,
            )
        )


def unlinking(queryset: QuerySet) -> None:
    """Django's deletion is about to set a foreign key of these rows to null or its default
    (``on_delete=SET_NULL``): note their keys, to read them again afterwards."""
    unlinked = _unlinked.get()
    if unlinked is not None and getattr(queryset.model, "cdms", None) is not None:
        keys = queryset.exclude(cdms_pk=None).values_list("cdms_pk", flat=True)
        unlinked[queryset.model].update(str(key) for key in keys)


def delete(action: Callable[[], T], using: str, operation: str) -> T:
    """Run Django's deletion ``action`` locally and delete the records of the synced rows it
    deletes remotely (see the module's docstring)."""
    block = local.block()
    noted: list[RemoteWrite] = []
    unlinked: dict[type, set[str]] = defaultdict(set)
    if block is not None:
        result = _run(action, noted, unlinked)
        for write in noted:
            block.add(write)
        return result
    try:
        with transaction.atomic(using=using):
            result = _run(action, noted, unlinked)
            if len(noted) == 1:
                remove(noted[0].target)
            else:
                send(noted)
            failed = [w for w in noted if not w.done and w.error is not None]
            if failed and len(failed) < len(noted):
                raise _PartlyDone
            if failed:
                raise BulkWriteError(operation, [(w.target, w.error) for w in failed], [])
            for model, keys in unlinked.items():
                if keys := keys - {w.key for w in noted if w.model is model}:
                    recheck(model, keys)
    except _PartlyDone:
        _in_step(noted, using)
        raise BulkWriteError(
            operation,
            [(w.target, w.error) for w in noted if not w.done],
            [w.target for w in noted if w.done],
        ) from None
    return result


def _run(action: Callable[[], T], noted: list[RemoteWrite], unlinked: dict) -> T:
    tokens = _noted.set(noted), _unlinked.set(unlinked)
    try:
        with local.local_only():  # the rows pointing at them, as stored: on_delete applies
            return action()
    finally:
        _noted.reset(tokens[0])
        _unlinked.reset(tokens[1])


def _in_step(noted: list[RemoteWrite], using: str) -> None:
    """After some remote deletes failed and the local transaction rolled back: read the
    records whose delete failed again, then delete the rows of those deleted."""
    failed: dict[type, set[str]] = defaultdict(set)
    gone: dict[type, set[str]] = defaultdict(set)
    for write in noted:
        (gone if write.done else failed)[write.model].add(write.key)
    with transaction.atomic(using=using):
        for model, keys in failed.items():
            recheck(model, keys)
        with local.local_only():
            for model, keys in gone.items():
                local.rows(model).filter(cdms_pk__in=keys).delete()
