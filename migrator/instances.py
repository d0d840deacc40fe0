"""A synced instance's remote side: the body a write sends for it, whether a record holds
what was sent, and how the values of the record a write returned are given back to it.

Single writes (``writes``) and bulk writes (``bulk``, ``batches``, ``atomic``) share these, so
that a record is written, recognised and adopted the same way whichever path wrote it."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cdms_api import codec
from cdms_api.errors import CDMSError
from cdms_api.keys import bind, bound_key, lookup_value

from . import local
from .loader import key_of
from .mapping import FieldMap, Mapping

if TYPE_CHECKING:
    from .models import CDMSModel

BIND = "@odata.bind"
#: remote keys of related rows, by (model, local id): worked out once for many instances
RelatedKeys = dict[tuple[type, Any], Any]


def snapshot(instance: CDMSModel) -> dict[str, Any]:
    """The mapped values as loaded, to tell which fields a save changes. Deferred fields
    (``only()``, ``defer()``) are left out rather than loaded one query each."""
    loaded = instance.__dict__
    return {
        fm.field.attname: loaded[fm.field.attname]
        for fm in instance.cdms.fields
        if fm.field.attname in loaded
    }


def payload(
    instance: CDMSModel, names: set[str] | None = None, keys: RelatedKeys | None = None
) -> dict[str, Any]:
    """The remote body for the mapped fields (those in ``names``, by attname, if given).
    ``keys`` (``related_keys``) gives the remote keys lookups point at, for many instances at
    once; without it each is read from the local table."""
    data: dict[str, Any] = {}
    cleared: set[str] = set()
    for fm in instance.cdms.fields:
        if names is not None and fm.field.attname not in names:
            continue
        value = getattr(instance, fm.field.attname)
        if not fm.is_lookup:
            data[fm.remote] = fm.to_remote(value)
        elif value is not None:
            data[f"{fm.navigation}{BIND}"] = bind(
                fm.target.cdms.entity_set, related_key(instance, fm, value, keys)
            )
        elif fm.remote not in cleared and not _points_elsewhere(instance, fm):
            cleared.add(fm.remote)  # once, for a lookup mapped once per target
            data[f"{fm.navigation}{BIND}"] = None
    return data


def _points_elsewhere(instance: CDMSModel, fm: FieldMap) -> bool:
    """Whether another field of a lookup with several targets holds its value: this one's
    None does not clear the lookup."""
    return any(
        other.is_lookup and other.remote == fm.remote and getattr(instance, other.field.attname)
        for other in instance.cdms.fields
        if other is not fm
    )


def related_key(instance: CDMSModel, fm: FieldMap, local_id: Any, keys: RelatedKeys | None = None):
    """The remote key of the row a lookup field points at; ``CDMSError`` when that row has
    no record (it was saved with ``skip_cdms``)."""
    if local_id is None:
        return None
    if keys is not None:
        key = keys.get((fm.target, local_id))
    else:
        cached = fm.field.get_cached_value(instance, default=None)
        key = (
            cached.cdms_pk
            if cached is not None and cached.pk == local_id
            else (
                local.rows(fm.target).filter(pk=local_id).values_list("cdms_pk", flat=True).first()
            )
        )
    if key is None:
        raise CDMSError(
            f"{instance._meta.label}.{fm.field.name} points at a row that does not "
            "exist in the remote CRM (saved with skip_cdms?)"
        )
    return key


def related_keys(model: type[CDMSModel], instances: Iterable[CDMSModel]) -> RelatedKeys:
    """The remote keys of the rows the instances' lookups point at: one local query per
    related model, for any number of instances."""
    wanted: dict[type, set] = defaultdict(set)
    for instance in instances:
        for fm in model.cdms.fields:
            if fm.is_lookup and (value := getattr(instance, fm.field.attname)) is not None:
                wanted[fm.target].add(value)
    keys: RelatedKeys = {}
    for target, ids in wanted.items():
        for pk, key in local.rows(target).filter(pk__in=ids).values_list("pk", "cdms_pk"):
            if key is not None:
                keys[(target, pk)] = key
    return keys


def holds(mapping: Mapping, body: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether a record holds every value a write's body sent, as the remote stores them
    (through the converters and JSON, ``stored_as``): how a write whose outcome is unknown
    is recognised."""
    by_remote = {fm.remote: fm for fm in mapping.fields if not fm.is_lookup}
    by_navigation = {fm.navigation: fm for fm in mapping.fields if fm.is_lookup}
    for name, sent in body.items():
        if name.endswith(BIND):
            fm = by_navigation[name[: -len(BIND)]]
            if sent is None:
                if lookup_value(record, fm.remote) is not None:
                    return False
            elif _key(fm.lookup_key(record)) != _key(bound_key(sent)):
                return False
        elif name in by_remote:
            fm = by_remote[name]
            sent, stored = codec.loads(codec.dumps(sent)), record.get(name)
            if not (stored_as(fm.to_python(sent), fm.to_python(stored)) or stored_as(sent, stored)):
                return False
    return True


def stored_as(sent: Any, stored: Any) -> bool:
    """Whether ``stored`` is the value ``sent`` as the CRM stores it: it keeps whole seconds
    of a date and time, and rounds a decimal to its column's scale (at least as fine as the
    digits the stored value shows: compared as the JSON held them, before a converter
    quantizes them to the local field's places)."""
    if sent == stored:
        return True
    if isinstance(sent, dt.datetime) and isinstance(stored, dt.datetime):
        return (
            stored.microsecond == 0
            and (sent.tzinfo is None) == (stored.tzinfo is None)
            and abs(sent - stored) < dt.timedelta(seconds=1)
        )
    if isinstance(sent, Decimal) and isinstance(stored, Decimal):
        if not (sent.is_finite() and stored.is_finite()):
            return False
        scale = stored.as_tuple().exponent
        return sent.as_tuple().exponent < scale and abs(sent - stored) <= Decimal(5).scaleb(
            scale - 1
        )
    return False


def note_create(instance: CDMSModel | None, body: dict[str, Any]) -> None:
    """Note the body of a create about to be sent for the instance: should a later create of
    its key meet the record (this one's answer lost), ``created_so`` tells whether the record
    is still as one of them left it."""
    if instance is not None:
        instance.__dict__.setdefault("_cdms_creates", []).append(body)


def created_so(instance: CDMSModel | None, record: dict[str, Any]) -> bool:
    """Whether the record holds what one of the instance's creates sent: nobody changed the
    fields they wrote since, so sending the instance's values again overwrites nobody's
    change. A record changed since is a conflict, as for an update."""
    if instance is None:
        return False
    creates = instance.__dict__.get("_cdms_creates", ())
    return any(holds(type(instance).cdms, body, record) for body in creates)


def _key(value: Any) -> str | None:
    return None if value is None else key_of(value)


def give(instance: CDMSModel, values: dict[str, Any], names: set[str] | None = None) -> None:
    """Give an instance the local values of the record a write returned, except where it
    holds a change of its own that the write did not send (``update_fields``): that stays a
    change for the next save. ``names`` (attnames) are the fields sent; all when None."""
    loaded, current = getattr(instance, "_cdms_loaded", {}), snapshot(instance)
    for attname, value in values.items():
        sent = names is None or attname in names
        if sent or attname not in current or loaded.get(attname) == current[attname]:
            setattr(instance, attname, value)
    instance._cdms_loaded = {**loaded, **{k: v for k, v in values.items() if k in current}}
