"""Remote writes of single model instances: create, update of the changed fields with the
ETag the instance was loaded with, delete. The caller holds the local transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dateutil.parser import isoparse

from cdms_api.client import bind
from cdms_api.errors import CDMSError

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
        data = payload(instance, names)
        if not data:
            return
        record = client.update(
            mapping.entity_set, instance.cdms_pk, data, etag=instance.cdms_etag or None
        )
    remember(instance, record)


def remove(instance: CDMSModel) -> None:
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


def remember(instance: CDMSModel, record: dict[str, Any]) -> None:
    """Keep the remote ETag and ``modifiedon`` the write produced, locally only."""
    instance.cdms_etag = record.get("@odata.etag", "")
    modified = record.get("modifiedon")
    instance.cdms_modified = isoparse(modified) if modified else None
    type(instance)._base_manager.filter(pk=instance.pk).update(
        cdms_pk=instance.cdms_pk,
        cdms_etag=instance.cdms_etag,
        cdms_modified=instance.cdms_modified,
    )
    instance._cdms_loaded = snapshot(instance)
