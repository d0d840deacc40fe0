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
change), or deletes them by a cascade of its own. A read that fails then leaves them to the
next read; the deletes stand (``sync.reread``).

When every remote delete failed, the local transaction rolls back and the error is raised.
When some failed, it rolls back too, and the local side is then brought in step with what
happened remotely: the records whose delete failed are read again (a cascaded one may be
gone, or its lookup cleared), the rows of those deleted are deleted locally (Django's
deletion again, its signals with it), and ``BulkWriteError`` lists the failures."""

from __future__ import annotations

import contextvars
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.signals import pre_delete

from cdms_api.errors import BulkWriteError

from . import local
from .batches import Kind, RemoteWrite, send
from .sync import recheck, reread
from .tombstones import bury
from .writes import remove

if TYPE_CHECKING:
    from .models import CDMSModel

T = TypeVar("T")


@dataclass
class _Deletion:
    """What one run of Django's deletion did to synced rows: the records to delete (with
    the rows' primary keys, which Django clears), and the keys of the rows it unlinked."""

    writes: list[RemoteWrite] = field(default_factory=list)
    pks: dict[int, Any] = field(default_factory=dict)
    unlinked: dict[type, set[str]] = field(default_factory=lambda: defaultdict(set))

    def failed(self) -> list[RemoteWrite]:
        return [w for w in self.writes if not w.done and w.error is not None]

    def restore(self, writes: list[RemoteWrite]) -> None:
        """Rows rolled back: their instances get back the primary keys Django cleared."""
        for w in writes:
            setattr(w.target, w.target._meta.pk.attname, self.pks[id(w)])


_running: contextvars.ContextVar[_Deletion | None] = contextvars.ContextVar(
    "cdms_deletion", default=None
)


class _PartlyDone(Exception):
    """Some remote deletes failed: the local transaction is rolled back, then redone."""


def follow(model: type[CDMSModel]) -> None:
    """Note the deletes of ``model``'s rows (every synced model, as its class is made)."""
    pre_delete.connect(_note, sender=model, weak=False, dispatch_uid=f"cdms-delete-{id(model)}")


def _note(sender: type[CDMSModel], instance: CDMSModel, **kwargs: Any) -> None:
    running = _running.get()
    if running is not None and instance.cdms_pk is not None and sender.cdms.entity_set:
        write = RemoteWrite(
            Kind.DELETE,
            sender,
            str(instance.cdms_pk),
            etag=instance.cdms_etag or None,
            target=instance,
        )
        running.writes.append(write)
        running.pks[id(write)] = instance.pk


def unlinking(queryset: QuerySet) -> bool:
    """Django's deletion is about to set a foreign key of these rows to null or its default
    (``on_delete=SET_NULL``): note their keys, to read them again afterwards. False when it
    unlinks no row at all (the ``UPDATE`` would change nothing)."""
    running = _running.get()
    if running is None or getattr(queryset.model, "cdms", None) is None:
        return True
    keys = list(queryset.values_list("cdms_pk", flat=True))
    running.unlinked[queryset.model].update(str(key) for key in keys if key is not None)
    return bool(keys)


def delete(action: Callable[[], T], using: str, operation: str) -> T:
    """Run Django's deletion ``action`` locally and delete the records of the synced rows it
    deletes remotely (see the module's docstring)."""
    block = local.block()
    deletion = _Deletion()
    if block is not None:
        result = _run(action, deletion)
        _bury(deletion.writes)  # with the block's local writes, rolled back with them
        for write in _children_first(deletion.writes):
            block.add(write)
        for model, keys in deletion.unlinked.items():
            block.reread(model, keys)
        return result
    writes = deletion.writes
    try:
        with transaction.atomic(using=using):
            result = _run(action, deletion)
            if len(writes) == 1:
                remove(writes[0].target)
            else:
                send(_children_first(writes))
            failed = deletion.failed()
            if failed and len(failed) < len(writes):
                raise _PartlyDone
            if failed:
                raise BulkWriteError(operation, [(w.target, w.error) for w in failed], [])
            if writes:
                _bury(writes)
                _read_unlinked(deletion)
    except _PartlyDone:
        _in_step(deletion, using)
        failed = deletion.failed()
        deletion.restore(failed)
        raise BulkWriteError(
            operation, [(w.target, w.error) for w in failed], [w.target for w in writes if w.done]
        ) from None
    except BulkWriteError:
        deletion.restore(writes)
        raise
    return result


def _children_first(writes: list[RemoteWrite]) -> list[RemoteWrite]:
    """The deletes ordered so that a model's rows go before those of the models they point
    at: deleting a record first makes the CRM clear (or cascade to) the lookups pointing at
    it, which would change the records still to delete, whose ``If-Match`` then fails.
    Django orders its own deletes by non-null foreign keys only."""
    models = list(dict.fromkeys(w.model for w in writes))
    ordered: list[type] = []
    while models:
        leaf = next(
            (
                m
                for m in models
                if not any(_points_at(other, m) for other in models if other is not m)
            ),
            models[0],  # a cycle: as Django collected them
        )
        ordered.append(leaf)
        models.remove(leaf)
    return sorted(writes, key=lambda w: ordered.index(w.model))


def _points_at(model: type, target: type) -> bool:
    """Whether ``model`` has a foreign key to ``target`` (so its rows go first)."""
    return any(
        field.many_to_one and field.related_model is target for field in model._meta.get_fields()
    )


def _run(action: Callable[[], T], deletion: _Deletion) -> T:
    token = _running.set(deletion)
    try:
        with local.local_only():  # the rows pointing at them, as stored: on_delete applies
            return action()
    finally:
        _running.reset(token)


def _in_step(deletion: _Deletion, using: str) -> None:
    """After some remote deletes failed and the local transaction rolled back: read the
    records whose delete failed again, delete the rows of those deleted, then read again the
    rows that pointed at them."""
    failed: dict[type, set[str]] = defaultdict(set)
    gone: dict[type, set[str]] = defaultdict(set)
    for write in deletion.writes:
        (gone if write.done else failed)[write.model].add(write.key)
    with transaction.atomic(using=using):
        for model, keys in failed.items():
            recheck(model, keys)
        with local.local_only():
            for model, keys in gone.items():
                local.rows(model).filter(cdms_pk__in=keys).delete()
        _bury([w for w in deletion.writes if w.done])
        _read_unlinked(deletion)


def _bury(writes: list[RemoteWrite]) -> None:
    """Tombstones for the records deleted: a page read before cannot bring their rows back
    (``migrator.tombstones``). One statement per model."""
    by_model: dict[type, dict[str, str]] = defaultdict(dict)
    for write in writes:
        by_model[write.model][write.key] = write.etag or ""
    for model, etags in by_model.items():
        bury(model, etags)


def _read_unlinked(deletion: _Deletion) -> None:
    """Read again the rows Django unlinked (their records' lookups cleared by the CRM), but
    those of records deleted or already read."""
    for model, keys in deletion.unlinked.items():
        if keys := keys - {w.key for w in deletion.writes if w.model is model}:
            reread(model, keys)
