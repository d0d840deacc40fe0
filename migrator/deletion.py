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


def delete(action: Callable[[], T], using: str, operation: str) -> T:
    """Run Django's deletion ``action`` locally and delete the records of the synced rows it
    deletes remotely (see the module's docstring)."""
    block = local.block()
    noted: list[RemoteWrite] = []
    if block is not None:
        result = _run(action, noted)
        for write in noted:
            block.add(write)
        return result
    try:
        with transaction.atomic(using=using):
            result = _run(action, noted)
            if len(noted) == 1:
                remove(noted[0].target)
                return result
            send(noted)
            failed = [w for w in noted if not w.done]
            if failed and len(failed) < len(noted):
                raise _PartlyDone
            if failed:
                raise BulkWriteError(operation, [(w.target, w.error) for w in failed], [])
    except _PartlyDone:
        _in_step(noted, using)
        raise BulkWriteError(
            operation,
            [(w.target, w.error) for w in noted if not w.done],
            [w.target for w in noted if w.done],
        ) from None
    return result


def _run(action: Callable[[], T], noted: list[RemoteWrite]) -> T:
    token = _noted.set(noted)
    try:
        with local.local_only():  # the rows pointing at them, as stored: on_delete applies
            return action()
    finally:
        _noted.reset(token)


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
