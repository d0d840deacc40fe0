"""Bulk writes of synced models: ``bulk_create``, ``bulk_update`` and ``qs.update()``.

Each runs Django's own method first, locally, inside the local transaction (so its checks,
its errors and its local semantics are Django's: ``F()`` expressions are computed by the
database, per row), reads back the rows it wrote (one query), and sends their remote writes
at the floor of round trips: ``CreateMultiple`` or ``$batch`` (``batches``). What the remote
stored is then written over the rows in one bulk write per model (the loader). Inside
``migrator.atomic()`` the remote writes join the block's changeset instead.

When every remote write failed, the local transaction rolls back and the error is raised.
When some failed, it rolls back too, Django's method runs again locally for the rows whose
remote write was made (and the rows with no record, which are local only), their records are
stored, and ``BulkWriteError`` lists each failure: both sides are in step for every row."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, models, transaction
from django.db.models.expressions import Subquery

from cdms_api.batch import MAX_OPERATIONS
from cdms_api.errors import BulkWriteError, CDMSNotSupported

from . import local
from .batches import Kind, RemoteWrite, apply, create_many, send
from .instances import payload, related_keys
from .sync import refresh

if TYPE_CHECKING:
    from .models import CDMSModel

CONFLICTS_REFUSED = (
    "{model}.objects.bulk_create(): {option} is decided by the local database, but the "
    "records are created remotely first, with keys of their own; use update_or_create() for "
    "each, or skip_cdms().bulk_create() for a deliberately local-only write."
)


class _PartlyDone(Exception):
    """Some remote writes failed: the local transaction is rolled back, then redone."""


def update(queryset: models.QuerySet, values: dict[str, Any]) -> int:
    """``qs.update(**values)``: sync the rows the queryset selects (one read), update them
    locally as Django does, then send each row's changed fields with ``If-Match`` on the ETag
    just read."""
    model = queryset.model
    _refuse_unsynced_reads(model, values)
    refresh(queryset.query)
    names = _sent(model, values)
    with local.local_only():
        pks = list(queryset.values_list("pk", flat=True))

    def change(failed: list[Any] | None) -> int:
        rows, changed = queryset, pks
        if failed is not None:
            left_out = {row.pk for row in failed}
            changed = [pk for pk in pks if pk not in left_out]
            rows = queryset.filter(pk__in=changed)
        with local.local_only():
            _lock_in_key_order(model, queryset.db, changed)
            return models.QuerySet.update(rows, **values)

    def writes_of() -> list[RemoteWrite]:
        rows = local.rows(model).using(queryset.db).filter(pk__in=pks, cdms_pk__isnull=False)
        rows = list(rows)
        keys = related_keys(model, rows)
        return [
            RemoteWrite(
                Kind.UPDATE, model, str(row.cdms_pk), body, row.cdms_etag or None, row, names
            )
            for row in rows
            if (body := payload(row, names, keys))
        ]

    return _write(queryset.db, "update", change, writes_of, send)


def bulk_update(
    queryset: models.QuerySet,
    objs: Iterable[CDMSModel],
    fields: Sequence[str],
    batch_size: int | None = None,
) -> int:
    """``bulk_update(objs, fields)``: Django's, locally; then each object's fields with
    ``If-Match`` on the ETag it was loaded with (as ``save()`` sends it), so that a remote
    change since then is a conflict, not a lost update."""
    model = queryset.model
    objs = list(objs)
    names = _sent(model, fields)

    def change(failed: list[Any] | None) -> int:
        left_out = {id(obj) for obj in failed or []}
        changed = [obj for obj in objs if id(obj) not in left_out]
        with local.local_only():
            _lock_in_key_order(model, queryset.db, [obj.pk for obj in changed])
            return models.QuerySet.bulk_update(queryset, changed, fields, batch_size)

    def writes_of() -> list[RemoteWrite]:
        synced = [obj for obj in objs if obj.cdms_pk is not None]
        rows = local.rows(model).using(queryset.db).in_bulk([obj.pk for obj in synced])
        keys = related_keys(model, rows.values())
        return [
            RemoteWrite(
                Kind.UPDATE, model, str(obj.cdms_pk), body, obj.cdms_etag or None, obj, names
            )
            for obj in synced
            if obj.pk in rows and (body := payload(rows[obj.pk], names, keys))
        ]

    return _write(queryset.db, "bulk_update", change, writes_of, send)


def bulk_create(
    queryset: models.QuerySet, objs: Iterable[CDMSModel], atomic: bool = False, **options: Any
) -> list[CDMSModel]:
    """``bulk_create(objs)``: Django's, locally (``batch_size`` as Django takes it); then
    the records, with keys made here (kept on the objects, so that a retry creates each
    once), by ``CreateMultiple`` where offered, else ``$batch``; ``atomic=True``: one
    changeset, all or nothing (at most 1,000 objects)."""
    model = queryset.model
    for option in ("ignore_conflicts", "update_conflicts"):
        if options.get(option):
            raise CDMSNotSupported(CONFLICTS_REFUSED.format(model=model.__name__, option=option))
    objs = list(objs)
    if atomic and len(objs) > MAX_OPERATIONS:
        raise CDMSNotSupported(
            f"{model.__name__}.objects.bulk_create(atomic=True): a changeset holds at most "
            f"{MAX_OPERATIONS} records; create them in blocks of {MAX_OPERATIONS}"
        )
    for obj in objs:
        if obj.cdms_pk is None:
            obj.cdms_pk = uuid.uuid4()
    given_pk = {id(obj) for obj in objs if obj._is_pk_set()}

    def change(failed: list[Any] | None) -> list[CDMSModel]:
        left_out = {id(obj) for obj in failed or []}
        if failed is not None:  # run again: the rows of the records made, as new rows
            _unsave(objs, given_pk)
        with local.local_only():
            return models.QuerySet.bulk_create(
                queryset, [obj for obj in objs if id(obj) not in left_out], **options
            )

    def writes_of() -> list[RemoteWrite]:
        keys = related_keys(model, objs)
        return [
            RemoteWrite(Kind.CREATE, model, str(obj.cdms_pk), payload(obj, keys=keys), target=obj)
            for obj in objs
        ]

    def sending(writes: list[RemoteWrite]) -> None:
        if atomic:
            send(writes, atomic=True)
        else:
            create_many(writes)

    try:
        _write(queryset.db, "bulk_create", change, writes_of, sending)
    except BaseException as error:
        done = {id(obj) for obj in error.done} if isinstance(error, BulkWriteError) else set()
        _unsave([obj for obj in objs if id(obj) not in done], given_pk)
        raise
    return objs


def _write(
    using: str,
    operation: str,
    change: Callable[[list[Any] | None], Any],
    writes_of: Callable[[], list[RemoteWrite]],
    sending: Callable[[list[RemoteWrite]], None],
) -> Any:
    """Django's local write (``change(None)``), then the remote writes, as the module's
    docstring says; ``change(failed)`` writes again all but the rows of the failed writes'
    targets."""
    block = local.block()
    try:
        with transaction.atomic(using=using):
            result = change(None)
            writes = writes_of()
            if block is not None:
                for write in writes:
                    block.add(write)
                return result
            sending(writes)
            failed = [w for w in writes if not w.done]
            if not failed:
                apply(writes)
                return result
            if len(failed) < len(writes):
                raise _PartlyDone
            raise BulkWriteError(operation, [(w.target, w.error) for w in failed], [])
    except _PartlyDone:
        done = [w for w in writes if w.done]
        with transaction.atomic(using=using):
            change([w.target for w in failed])
            apply(done)
        raise BulkWriteError(
            operation, [(w.target, w.error) for w in failed], [w.target for w in done]
        ) from None


def _lock_in_key_order(model: type[CDMSModel], using: str, pks: list[Any]) -> None:
    """Lock the rows an update writes first, by primary key: the order every page writer
    locks rows in (``loader``). Django's ``UPDATE`` locks them in the order it finds them,
    and deadlocked with a resync's page holding some of them (PostgreSQL)."""
    if connections[using].features.has_select_for_update:
        rows = local.rows(model).using(using).select_for_update().filter(pk__in=pks)
        list(rows.order_by("pk").values_list("pk", flat=True))


def _unsave(objs: list[CDMSModel], given_pk: set[int]) -> None:
    """Objects whose local rows were rolled back are unsaved again (their remote keys kept);
    a primary key the caller gave is kept too."""
    for obj in objs:
        if id(obj) not in given_pk:
            obj.pk = None
        obj._state.adding = True


def _sent(model: type[CDMSModel], names: Iterable[str]) -> set[str]:
    """The attnames of the mapped fields among ``names`` (what a remote write sends)."""
    attnames = {model._meta.get_field(name).attname for name in names}
    return {fm.field.attname for fm in model.cdms.fields if fm.field.attname in attnames}


def _refuse_unsynced_reads(model: type[CDMSModel], values: dict[str, Any]) -> None:
    """A subquery in an update's values reads rows of its own, which the update does not
    sync: the values computed from them, sent to the CRM, could be stale."""
    for name, value in values.items():
        if _reads_rows(value):
            raise CDMSNotSupported(
                f"{model.__name__}.objects...update({name}=...): the value reads other rows "
                "through a subquery, which the update cannot bring up to date first; compute "
                "the values from a synced query and use bulk_update()"
            )


def _reads_rows(expression: Any) -> bool:
    if isinstance(expression, Subquery | models.QuerySet):
        return True
    sources = getattr(expression, "get_source_expressions", lambda: [])()
    return any(_reads_rows(source) for source in sources if source is not None)
