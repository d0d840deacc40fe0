"""Remote writes of single model instances: create, update of the changed fields with the
ETag the instance was loaded with, delete. The caller holds the local transaction.

After a write the local row and the instance hold what the CRM stored, as the write's answer
shows it (the CRM rounds decimals to its scale, keeps whole seconds, reads a date as it
understood it): a later read, seeing the same ETag, would never correct them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from cdms_api import codec
from cdms_api.errors import CDMSError, DuplicateKey, NotFound, PreconditionFailed
from cdms_api.keys import bind

from . import local, remote
from .loader import key_of, record_values

if TYPE_CHECKING:
    from .models import CDMSModel


def snapshot(instance: CDMSModel) -> dict[str, Any]:
    """The mapped values as loaded, to tell which fields a save changes. Deferred fields
    (``only()``, ``defer()``) are left out rather than loaded one query each."""
    loaded = instance.__dict__
    return {
        fm.field.attname: loaded[fm.field.attname]
        for fm in instance.cdms.fields
        if fm.field.attname in loaded
    }


def push(instance: CDMSModel, create: bool, update_fields: Any = None) -> None:
    """Create the record, or send the fields changed since the instance was loaded (or
    ``update_fields``) with ``If-Match`` on its ETag; nothing when nothing changed."""
    if create:
        adopt(instance, _create(instance))
        return
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
    mapping = instance.cdms
    try:
        record = remote.client().update(
            mapping.entity_set, instance.cdms_pk, data, etag=instance.cdms_etag or None
        )
    except CDMSError as error:
        # A 412, or an answer lost (the PATCH may have been applied): read the record.
        if not (error.ambiguous or isinstance(error, PreconditionFailed)):
            raise
        try:
            settled = settle_update(instance, names)
        except CDMSError:
            raise error from None
        if not settled:
            raise
        return
    adopt(instance, record, names)


def _create(instance: CDMSModel) -> dict[str, Any]:
    """POST the record with the instance's key. The key was made for this instance when it
    was first saved, so a record that already has it is the one an earlier attempt created
    (its answer lost): a retried save adopts it, sending the values again as an update."""
    mapping, client = instance.cdms, remote.client()
    body = payload(instance)
    try:
        return client.create(mapping.entity_set, body, key=instance.cdms_pk)
    except DuplicateKey as duplicate:
        try:
            return client.update(mapping.entity_set, instance.cdms_pk, body)
        except NotFound:  # another key of the record is the duplicate (an alternate key)
            raise duplicate from None


def settle_update(instance: CDMSModel, names: set[str]) -> bool:
    """After an update failed with its outcome unknown, or with 412, find out whether the
    record already holds what was sent.

    The client repeats a PATCH whose answer was lost; when the first attempt was applied, the
    repeat fails on the ETag that attempt changed (412). Whoever wrote it, a record that holds
    every value sent is the outcome the save wanted: the save succeeds, with the record's
    other fields brought in. Otherwise the failure stands (False)."""
    mapping = instance.cdms
    record = remote.client().get(mapping.entity_set, instance.cdms_pk, select=mapping.select)
    for fm in mapping.fields:
        if fm.field.attname not in names:
            continue
        value = getattr(instance, fm.field.attname)
        if fm.is_lookup:
            if _key(related_key(instance, fm, value)) != _key(fm.lookup_key(record)):
                return False
        elif _as_sent(fm, value) != fm.to_python(record.get(fm.remote)):
            return False
    adopt(instance, record, names)
    return True


def adopt(instance: CDMSModel, record: dict[str, Any], names: set[str] | None = None) -> None:
    """Store the record a write returned in the instance's local row, and give the instance
    its values, except where it holds a change of its own that the write did not send
    (``update_fields``): that stays a change for the next save. ``names`` (attnames) are the
    fields sent; all when None."""
    values = record_values(type(instance), record)
    local.rows(type(instance)).filter(pk=instance.pk).update(cdms_pk=instance.cdms_pk, **values)
    loaded, current = getattr(instance, "_cdms_loaded", {}), snapshot(instance)
    for attname, value in values.items():
        sent = names is None or attname in names
        if sent or attname not in current or loaded.get(attname) == current[attname]:
            setattr(instance, attname, value)
    instance._cdms_loaded = {**loaded, **{k: v for k, v in values.items() if k in current}}


def _key(value: Any) -> str | None:
    return None if value is None else key_of(value)


def _as_sent(fm, value: Any) -> Any:
    """A field value as the remote stores it: through the converter and JSON, and back."""
    return fm.to_python(codec.loads(codec.dumps(fm.to_remote(value))))


def remove(instance: CDMSModel) -> None:
    """Delete the record; one already gone remotely is what was asked for."""
    with contextlib.suppress(NotFound):
        remote.client().delete(
            instance.cdms.entity_set, instance.cdms_pk, etag=instance.cdms_etag or None
        )


def payload(instance: CDMSModel, names: set[str] | None = None) -> dict[str, Any]:
    """The remote body for the mapped fields (those in ``names``, by attname, if given)."""
    data: dict[str, Any] = {}
    cleared: set[str] = set()
    for fm in instance.cdms.fields:
        if names is not None and fm.field.attname not in names:
            continue
        value = getattr(instance, fm.field.attname)
        if not fm.is_lookup:
            data[fm.remote] = fm.to_remote(value)
        elif value is not None:
            data[f"{fm.navigation}@odata.bind"] = bind(
                fm.target.cdms.entity_set, related_key(instance, fm, value)
            )
        elif fm.remote not in cleared and not _points_elsewhere(instance, fm):
            cleared.add(fm.remote)  # once, for a lookup mapped once per target
            data[f"{fm.navigation}@odata.bind"] = None
    return data


def _points_elsewhere(instance: CDMSModel, fm) -> bool:
    """Whether another field of a lookup with several targets holds its value: this one's
    None does not clear the lookup."""
    return any(
        other.is_lookup and other.remote == fm.remote and getattr(instance, other.field.attname)
        for other in instance.cdms.fields
        if other is not fm
    )


def related_key(instance: CDMSModel, fm, local_id: Any):
    if local_id is None:
        return None
    cached = fm.field.get_cached_value(instance, default=None)
    key = (
        cached.cdms_pk
        if cached is not None and cached.pk == local_id
        else (local.rows(fm.target).filter(pk=local_id).values_list("cdms_pk", flat=True).first())
    )
    if key is None:
        raise CDMSError(
            f"{instance._meta.label}.{fm.field.name} points at a row that does not "
            "exist in the remote CRM (saved with skip_cdms?)"
        )
    return key
