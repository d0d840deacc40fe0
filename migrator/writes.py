"""Remote writes of single model instances: create, update of the changed fields with the
ETag the instance was loaded with, delete. The caller holds the local transaction. Inside a
``migrator.atomic()`` block they are handed to the block instead, which sends them with the
block's other writes.

After a write the local row and the instance hold what the CRM stored, as the write's answer
shows it (the CRM rounds decimals to its scale, keeps whole seconds, reads a date as it
understood it): a later read, seeing the same ETag, would never correct them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cdms_api.errors import CDMSError, DuplicateKey, NotFound, PreconditionFailed

from . import local, remote
from .batches import Kind, RemoteWrite
from .instances import give, holds, payload, snapshot
from .loader import record_values

if TYPE_CHECKING:
    from .models import CDMSModel


def push(instance: CDMSModel, create: bool, update_fields: Any = None) -> None:
    """Create the record, or send the fields changed since the instance was loaded (or
    ``update_fields``) with ``If-Match`` on its ETag; nothing when nothing changed."""
    model, key = type(instance), str(instance.cdms_pk)
    if create:
        write = RemoteWrite(Kind.CREATE, model, key, payload(instance), target=instance)
    else:
        loaded = getattr(instance, "_cdms_loaded", None)
        if update_fields is not None:
            names = {instance._meta.get_field(n).attname for n in update_fields}
        elif loaded is not None:
            names = {k for k, v in snapshot(instance).items() if k not in loaded or loaded[k] != v}
        else:
            names = set(snapshot(instance))
        data = payload(instance, names)
        if not data:
            return
        write = RemoteWrite(
            Kind.UPDATE, model, key, data, instance.cdms_etag or None, instance, names
        )
    block = local.block()
    if block is not None:
        block.add(write)
    elif create:
        adopt(instance, _create(instance, write.body))
    else:
        _update(instance, write)


def _create(instance: CDMSModel, body: dict[str, Any]) -> dict[str, Any]:
    """POST the record with the instance's key. The key was made for this instance when it
    was first saved, so a record that already has it is the one an earlier attempt created
    (its answer lost): a retried save adopts it, sending the values again as an update."""
    mapping, client = instance.cdms, remote.client()
    try:
        return client.create(mapping.entity_set, body, key=instance.cdms_pk)
    except DuplicateKey as duplicate:
        try:
            return client.update(mapping.entity_set, instance.cdms_pk, body)
        except NotFound:  # another key of the record is the duplicate (an alternate key)
            raise duplicate from None


def _update(instance: CDMSModel, write: RemoteWrite) -> None:
    try:
        record = remote.client().update(write.entity_set, write.key, write.body, etag=write.etag)
    except CDMSError as error:
        # A 412, or an answer lost (the PATCH may have been applied): read the record.
        if not (error.ambiguous or isinstance(error, PreconditionFailed)):
            raise
        try:
            current = settle_update(instance, write)
        except CDMSError:
            # Not found out: a 412 may be this save's own earlier attempt, applied with its
            # answer lost and sent again by the session (a 503).
            error.ambiguous = True
            raise error from None
        if current is not None:
            if isinstance(error, PreconditionFailed):
                error.sent, error.current = write.body, current
            raise
        return
    adopt(instance, record, write.names)


def settle_update(instance: CDMSModel, write: RemoteWrite) -> dict[str, Any] | None:
    """After an update failed with its outcome unknown, or with 412, find out whether the
    record already holds what was sent.

    The client repeats a PATCH whose answer was lost; when the first attempt was applied, the
    repeat fails on the ETag that attempt changed (412). Whoever wrote it, a record that holds
    every value sent is the outcome the save wanted: the save succeeds, with the record's
    other fields brought in (None). Otherwise the failure stands: the record as the remote
    holds it is returned."""
    mapping = instance.cdms
    record = remote.client().get(mapping.entity_set, instance.cdms_pk, select=mapping.select)
    if not holds(mapping, write.body or {}, record):
        return record
    adopt(instance, record, write.names)
    return None


def adopt(instance: CDMSModel, record: dict[str, Any], names: set[str] | None = None) -> None:
    """Store the record a write returned in the instance's local row, and give the instance
    its values (``instances.give``). ``names`` (attnames) are the fields sent; all when None."""
    values = record_values(type(instance), record)
    local.rows(type(instance)).filter(pk=instance.pk).update(cdms_pk=instance.cdms_pk, **values)
    give(instance, values, names)


def remove(instance: CDMSModel) -> None:
    """Delete the record; one already gone remotely is what was asked for."""
    with contextlib.suppress(NotFound):
        remote.client().delete(
            instance.cdms.entity_set, instance.cdms_pk, etag=instance.cdms_etag or None
        )
