"""Remote writes of single model instances: create, update of the changed fields with the
ETag the instance was loaded with, delete. The caller holds the local transaction. Inside a
``migrator.atomic()`` block they are handed to the block instead, which sends them with the
block's other writes. Outside one, an update of a stored row is sent from inside Django's
save, just before its ``UPDATE`` (``InPlace``): the one local ``UPDATE`` writes what the CRM
stored, and a save that then fails locally has the update undone.

After a write the local row and the instance hold what the CRM stored, as the write's answer
shows it (the CRM rounds decimals to its scale, keeps whole seconds, reads a date as it
understood it): a later read, seeing the same ETag, would never correct them."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.db.models.signals import post_save

from cdms_api.errors import (
    CDMSError,
    DuplicateKey,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
)

from . import local, remote
from .batches import Kind, RemoteWrite
from .instances import created_so, give, holds, note_create, payload, snapshot
from .loader import record_values

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator")
_in_place: contextvars.ContextVar[InPlace | None] = contextvars.ContextVar(
    "cdms_in_place", default=None
)


def push(instance: CDMSModel, create: bool, update_fields: Any = None) -> None:
    """Create the record, or send the fields changed since the instance was loaded (or
    ``update_fields``) with ``If-Match`` on its ETag; nothing when nothing changed."""
    model, key = type(instance), str(instance.cdms_pk)
    if create:
        write = RemoteWrite(Kind.CREATE, model, key, payload(instance), target=instance)
    elif (write := _update_of(instance, update_fields)) is None:
        return
    block = local.block()
    if block is not None:
        block.add(write)
    elif create:
        adopt(instance, _answered(instance, _create(instance, write.body)))
    else:
        adopt(instance, _updated(instance, write), write.names)


def _update_of(instance: CDMSModel, update_fields: Any) -> RemoteWrite | None:
    """The update of the fields changed since the instance was loaded (or ``update_fields``);
    None when nothing changed."""
    loaded = getattr(instance, "_cdms_loaded", None)
    if update_fields is not None:
        names = {instance._meta.get_field(n).attname for n in update_fields}
    elif loaded is not None:
        names = {k for k, v in snapshot(instance).items() if k not in loaded or loaded[k] != v}
    else:
        names = set(snapshot(instance))
    data = payload(instance, names)
    if not data:
        return None
    return RemoteWrite(
        Kind.UPDATE,
        type(instance),
        str(instance.cdms_pk),
        data,
        instance.cdms_etag or None,
        instance,
        names,
    )


def _create(instance: CDMSModel, body: dict[str, Any]) -> dict[str, Any]:
    """POST the record with the instance's key. The key was made for this instance when it
    was first saved, so a record that already has it is the one an earlier attempt created
    (its answer lost), or a bulk create whose read back failed: it is adopted
    (``_adopt_created``)."""
    mapping, client = instance.cdms, remote.client()
    note_create(instance, body)
    try:
        return client.create(mapping.entity_set, body, key=instance.cdms_pk)
    except DuplicateKey as duplicate:
        return _adopt_created(instance, body, duplicate)


def _adopt_created(
    instance: CDMSModel, body: dict[str, Any], duplicate: DuplicateKey
) -> dict[str, Any]:
    """Adopt the record an earlier create of the instance made: as it is when it holds the
    values sent; sent them again with ``If-Match`` on its ETag when nobody changed it since
    (``instances.created_so``); ``PreconditionFailed`` when somebody did, with both versions
    on the error, as for an update."""
    mapping, client = instance.cdms, remote.client()
    key = instance.cdms_pk
    try:
        record = client.get(mapping.entity_set, key, select=mapping.select)
    except NotFound:  # another key of the record is the duplicate (an alternate key)
        raise duplicate from None
    if holds(mapping, body, record):
        return record
    if not created_so(instance, record):
        error = PreconditionFailed(
            f"{mapping.entity_set}({key}) changed remotely since it was created", status=412
        )
        error.sent, error.current = body, record
        raise error
    return client.update(mapping.entity_set, key, body, etag=record.get("@odata.etag"))


def _updated(instance: CDMSModel, write: RemoteWrite) -> dict[str, Any]:
    """Send the update; the local values of the record it left."""
    try:
        record = remote.client().update(write.entity_set, write.key, write.body, etag=write.etag)
        return _answered(instance, record)
    except CDMSError as error:
        # A 412, or an answer lost (the PATCH may have been applied): read the record.
        if not (error.ambiguous or isinstance(error, PreconditionFailed)):
            raise
        try:
            current, values = settle_update(instance, write)
        except CDMSError:
            # Not found out: a 412 may be this save's own earlier attempt, applied with its
            # answer lost and sent again by the session (a 503).
            error.ambiguous = True
            raise error from None
        if values is None:
            if isinstance(error, PreconditionFailed):
                error.sent, error.current = write.body, current
            raise
        return values


def _answered(instance: CDMSModel, record: dict[str, Any]) -> dict[str, Any]:
    """The local values of the record a write answered. A record that cannot be stored still
    acknowledged the write: its error is ambiguous (the write was applied)."""
    try:
        return record_values(type(instance), record)
    except MalformedResponse as error:
        error.ambiguous = True
        raise


def settle_update(
    instance: CDMSModel, write: RemoteWrite
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """After an update failed with its outcome unknown, or with 412, find out whether the
    record already holds what was sent.

    The client repeats a PATCH whose answer was lost; when the first attempt was applied, the
    repeat fails on the ETag that attempt changed (412). Whoever wrote it, a record that holds
    every value sent is the outcome the save wanted: the save succeeds, with the record's
    other fields brought in (its local values are returned with it). Otherwise the failure
    stands (None with the record, as the remote holds it)."""
    mapping = instance.cdms
    record = remote.client().get(mapping.entity_set, instance.cdms_pk, select=mapping.select)
    if not holds(mapping, write.body or {}, record):
        return record, None
    return record, record_values(type(instance), record)


def adopt(instance: CDMSModel, values: dict[str, Any], names: set[str] | None = None) -> None:
    """Store the local values of the record a write returned in the instance's local row,
    and give them to the instance (``instances.give``). ``names`` (attnames) are the fields
    sent; all when None."""
    local.rows(type(instance)).filter(pk=instance.pk).update(cdms_pk=instance.cdms_pk, **values)
    give(instance, values, names)


class InPlace:
    """An update of a stored row sent from inside Django's save, just before its ``UPDATE``
    (``CDMSModel._do_update``), so that the one ``UPDATE`` writes what the CRM stored, with
    its ETag. When the save then fails locally (a constraint, a ``post_save`` receiver), the
    remote update is undone (``in_place``). An update that could not be undone (the values
    it replaces unknown) is not sent in place: the save pushes it after its ``UPDATE``."""

    def __init__(self, instance: CDMSModel, update_fields: Any) -> None:
        self.instance, self.update_fields = instance, update_fields
        self.handled = False  # the remote side dealt with in place: sent, or nothing to send
        self.write: RemoteWrite | None = None
        self.values: dict[str, Any] = {}  # the local values of the record it left
        self.loaded: dict[str, Any] = {}  # the values it replaced, as loaded

    def send(self, values: list[tuple]) -> list[tuple]:
        """Send the update; Django's ``UPDATE`` values, the record's in place of the
        instance's, and the record's other values added."""
        instance = self.instance
        write = _update_of(instance, self.update_fields)
        loaded = getattr(instance, "_cdms_loaded", None)
        if write is not None and (loaded is None or not write.names <= loaded.keys()):
            return values
        self.handled = True
        if write is None:
            return values
        self.loaded = {name: loaded[name] for name in write.names}
        self.values = _updated(instance, write)
        self.write = write
        stored = dict(self.values)
        merged = [(f, m, stored.pop(f.attname, v)) for f, m, v in values]
        meta = instance._meta
        return merged + [(meta.get_field(name), None, v) for name, v in stored.items()]

    def needs_no_transaction(self) -> bool:
        """Whether a save in autocommit mode can write its one ``UPDATE`` without a
        transaction around it: the update is sure to go in place (every mapped field was
        loaded, so it can be undone), and nothing that could fail runs after the ``UPDATE``
        (no ``post_save`` receiver). A failing ``UPDATE`` undoes itself, and the update is
        then undone remotely. That spares a ``BEGIN`` and a ``COMMIT`` per save. (Inside an
        atomic block the save keeps its savepoint: a remote error must leave the caller's
        transaction usable.)"""
        instance = self.instance
        loaded = getattr(instance, "_cdms_loaded", None)
        mapped = {fm.field.attname for fm in instance.cdms.fields}
        return (
            loaded is not None
            and mapped <= loaded.keys()
            and not post_save.has_listeners(type(instance))
        )

    def adopt(self) -> None:
        """The save succeeded: give the instance what the CRM stored."""
        if self.write is not None:
            give(self.instance, self.values, self.write.names)

    def undo(self) -> None:
        """Put the record back as it was before the update (the fields sent, with ``If-Match``
        on the ETag the update gave it), and give the instance the ETag that leaves it."""
        instance, write = self.instance, self.write
        before = copy.copy(instance)
        before.__dict__.update(self.loaded)
        record = remote.client().update(
            write.entity_set, write.key, payload(before, write.names), etag=self.values["cdms_etag"]
        )
        instance.cdms_etag = record.get("@odata.etag", "")


def in_place_update(instance: CDMSModel, update_fields: Any) -> InPlace | None:
    """The update of a stored row, to send in place; None in a ``migrator.atomic()`` block
    (which sends its writes at its end), and for a model whose fields span the tables of
    several models (multi-table inheritance: one ``UPDATE`` per table)."""
    if local.block() is not None or instance._meta.parents:
        return None
    return InPlace(instance, update_fields)


@contextlib.contextmanager
def in_place(update: InPlace | None) -> Iterator[None]:
    """Within the block, ``update`` is sent by its instance's ``_do_update``; when the block
    fails after it was sent, it is undone."""
    if update is None:
        yield
        return
    token = _in_place.set(update)
    try:
        yield
    except BaseException as failure:
        if update.write is not None:
            _undo(update, failure)
        raise
    finally:
        _in_place.reset(token)


def sending_in_place(instance: CDMSModel) -> InPlace | None:
    """The update ``instance``'s save sends in place, not sent yet; None if none."""
    update = _in_place.get()
    if update is None or update.instance is not instance or update.handled:
        return None
    return update


def _undo(update: InPlace, failure: BaseException) -> None:
    try:
        update.undo()
    except CDMSError as error:
        message = (
            f"{update.write!r}: the save failed locally after the record was updated, and the "
            f"update could not be undone ({error}): the record keeps the values sent"
        )
        logger.error(message)
        failure.add_note(message)


def remove(instance: CDMSModel) -> None:
    """Delete the record; one already gone remotely is what was asked for."""
    with contextlib.suppress(NotFound):
        remote.client().delete(
            instance.cdms.entity_set, instance.cdms_pk, etag=instance.cdms_etag or None
        )
