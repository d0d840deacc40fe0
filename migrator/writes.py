"""Remote writes of single model instances: create, update of the changed fields with the
ETag the instance was loaded with, delete. The caller holds the local transaction."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import simplejson
from dateutil.parser import isoparse

from cdms_api.errors import CDMSError, NotFound, PreconditionFailed
from cdms_api.keys import bind
from cdms_api.session import dumps

from . import remote

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
    mapping = instance.cdms
    client = remote.client()
    loaded = getattr(instance, "_cdms_loaded", None)
    if create:
        record = client.create(mapping.entity_set, payload(instance), key=instance.cdms_pk)
    else:
        names = None
        if update_fields is not None:
            names = {instance._meta.get_field(n).attname for n in update_fields}
        elif loaded is not None:
            names = {k for k, v in snapshot(instance).items() if k not in loaded or loaded[k] != v}
        else:
            names = set(snapshot(instance))
        data = payload(instance, names)
        if not data:
            return
        try:
            record = client.update(
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
        remember(instance, record, names)
        return
    remember(instance, record)


def settle_update(instance: CDMSModel, names: set[str]) -> bool:
    """After an update failed with its outcome unknown, or with 412, find out whether the
    record already holds what was sent.

    The client repeats a PATCH whose answer was lost; when the first attempt was applied, the
    repeat fails on the ETag that attempt changed (412). Whoever wrote it, a record that holds
    every value sent is the outcome the save wanted: its other fields are brought in locally
    and the save succeeds. Otherwise the failure stands (False)."""
    from .sync import apply

    mapping = instance.cdms
    record = remote.client().get(mapping.entity_set, instance.cdms_pk, select=mapping.select)
    for fm in mapping.fields:
        if fm.field.attname not in names:
            continue
        value = getattr(instance, fm.field.attname)
        if fm.is_lookup:
            want, have = related_key(instance, fm, value), record.get(fm.remote)
            if _key(want) != _key(have):
                return False
        elif _as_sent(fm, value) != fm.to_python(record.get(fm.remote)):
            return False
    apply(type(instance), [record])
    # The row now holds the record. The instance takes its values, except where it holds a
    # change of its own that this save did not send (update_fields): that stays a change.
    loaded, current = getattr(instance, "_cdms_loaded", {}), snapshot(instance)
    row = (
        type(instance)
        ._base_manager.filter(pk=instance.pk)
        .values("cdms_etag", "cdms_modified", "modified", *current)
        .get()
    )
    for attname in ("cdms_etag", "cdms_modified", "modified", *current):
        if attname in names or attname not in current or loaded.get(attname) == current[attname]:
            setattr(instance, attname, row[attname])
    instance._cdms_loaded = {**loaded, **{attname: row[attname] for attname in current}}
    return True


def _key(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def _as_sent(fm, value: Any) -> Any:
    """A field value as the remote stores it: through the converter and JSON, and back."""
    return fm.to_python(simplejson.loads(dumps(fm.to_remote(value)), use_decimal=True))


def remove(instance: CDMSModel) -> None:
    """Delete the record; one already gone remotely is what was asked for."""
    with contextlib.suppress(NotFound):
        remote.client().delete(
            instance.cdms.entity_set, instance.cdms_pk, etag=instance.cdms_etag or None
        )


def payload(instance: CDMSModel, names: set[str] | None = None) -> dict[str, Any]:
    """The remote body for the mapped fields (those in ``names``, by attname, if given)."""
    data: dict[str, Any] = {}
    for fm in instance.cdms.fields:
        if names is not None and fm.field.attname not in names:
            continue
        value = getattr(instance, fm.field.attname)
        if fm.is_lookup:
            data[f"{fm.navigation}@odata.bind"] = bind(
                fm.target.cdms.entity_set, related_key(instance, fm, value)
            )
        else:
            data[fm.remote] = fm.to_remote(value)
    return data


def related_key(instance: CDMSModel, fm, local_id: Any):
    if local_id is None:
        return None
    cached = fm.field.get_cached_value(instance, default=None)
    key = (
        cached.cdms_pk
        if cached is not None and cached.pk == local_id
        else (fm.target._base_manager.filter(pk=local_id).values_list("cdms_pk", flat=True).first())
    )
    if key is None:
        raise CDMSError(
            f"{instance._meta.label}.{fm.field.name} points at a row that does not "
            "exist in the remote CRM (saved with skip_cdms?)"
        )
    return key


def remember(instance: CDMSModel, record: dict[str, Any], names: set[str] | None = None) -> None:
    """Keep the remote ETag and ``modifiedon`` the write produced, locally only; note the
    fields written (``names``, by attname; all if None) as loaded."""
    instance.cdms_etag = record.get("@odata.etag", "")
    modified = record.get("modifiedon")
    instance.cdms_modified = isoparse(modified) if modified else None
    type(instance)._base_manager.filter(pk=instance.pk).update(
        cdms_pk=instance.cdms_pk,
        cdms_etag=instance.cdms_etag,
        cdms_modified=instance.cdms_modified,
    )
    written = snapshot(instance)
    if names is not None:
        loaded = getattr(instance, "_cdms_loaded", {})
        written = {**loaded, **{k: v for k, v in written.items() if k in names}}
    instance._cdms_loaded = written
