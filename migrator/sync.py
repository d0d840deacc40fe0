"""The sync engine: bring the local rows a queryset could return up to date with the remote.

1. The translator turns the queryset into a remote read that returns a superset of the true
   matches; its records are written locally one page at a time (new rows created, changed rows
   updated, rows whose ETag did not change skipped), in one bulk write per page.
2. The local query then runs. Any row it returns that the remote read did not (changed or
   deleted remotely) is re-checked by key, in one read for all of them, and updated or deleted;
   if that changed anything, the local query runs again.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db import models, transaction
from django.db.models.query import ModelIterable
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import CDMSNotSupported

from . import remote
from .translator import RemotePlan, translate

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator")
MAX_SYNC_ROWS = 5000
FOREIGN_KEY_DEPTH = 3


class SyncLimitWarning(UserWarning):
    """A read matched more remote records than ``CDMS["MAX_SYNC_ROWS"]``; the rest is left to
    the resync."""


def plan_for(queryset: models.QuerySet) -> RemotePlan:
    plan = translate(queryset)
    if plan.filter is odata.TRUE and plan.relaxed:
        if not (queryset.model.cdms.allow_full_reads or remote.setting("ALLOW_FULL_READS", False)):
            raise CDMSNotSupported(
                f"The remote cannot serve {', '.join(plan.relaxed)} on "
                f"{queryset.model.__name__}: without it the read would fetch the whole "
                f"'{queryset.model.cdms.entity_set}' entity set. Add a condition the remote can "
                "filter on, use skip_cdms() for a local-only query, or allow full reads "
                "(CDMS['ALLOW_FULL_READS'] or CDMS.allow_full_reads on the model)."
            )
        warnings.warn(
            f"{queryset.model.__name__}: {', '.join(plan.relaxed)} cannot be filtered remotely; "
            "reading the entity set, bounded by MAX_SYNC_ROWS",
            SyncLimitWarning,
            stacklevel=4,
        )
    return plan


def describe(queryset: models.QuerySet) -> str:
    """The remote request a queryset would make, as text."""
    plan = plan_for(queryset)
    mapping = queryset.model.cdms
    if plan.filter is odata.FALSE:
        return f"(no request: nothing can match on {mapping.entity_set})"
    params = {"$select": ",".join(mapping.select)}
    if plan.filter is not odata.TRUE:
        params["$filter"] = odata.render(plan.filter)
    if plan.orderby:
        params["$orderby"] = ",".join(plan.orderby)
    if plan.top is not None:
        params["$top"] = str(plan.top)
    return f"GET {mapping.entity_set}?{urlencode(params, safe='$,()/')}"


def sync(queryset: models.QuerySet) -> list[Any]:
    """Refresh what ``queryset`` could return, then evaluate it locally; returns its results."""
    model = queryset.model
    plan = plan_for(queryset)
    seen, complete = set(), True
    if plan.filter is not odata.FALSE:
        limit = remote.setting("MAX_SYNC_ROWS", MAX_SYNC_ROWS)
        records = remote.client().iter(
            model.cdms.entity_set,
            filter=None if plan.filter is odata.TRUE else plan.filter,
            select=model.cdms.select,
            orderby=plan.orderby or None,
            top=min(plan.top, limit) if plan.top is not None else limit + 1,
        )
        for page in _pages(records, remote.client().page_size):
            if len(seen) + len(page) > limit:
                page = page[: limit - len(seen)]
                complete = False
            seen.update(apply(model, page))
            if not complete:
                warnings.warn(
                    f"{model.__name__}: more than {limit} remote records match; only the first "
                    f"{limit} were synced, the rest is left to the resync (MAX_SYNC_ROWS)",
                    SyncLimitWarning,
                    stacklevel=3,
                )
                break
    local = queryset.skip_cdms()
    results = list(local)
    if not complete:
        return results
    stale = _keys_of(local, results) - seen
    if plan.keys is not None:
        gone = stale & plan.keys
        if gone:
            _delete_local(model, gone)
        stale -= plan.keys
    else:
        gone = set()
    if stale:
        gone |= recheck(model, stale)
    if gone or stale:
        results = list(queryset.skip_cdms())
    return results


def _pages(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while page := list(islice(iterator, size)):
        yield page


def _keys_of(queryset: models.QuerySet, results: list[Any]) -> set[str]:
    """Remote keys of the rows a local evaluation returned."""
    if issubclass(queryset._iterable_class, ModelIterable):
        return {str(row.cdms_pk) for row in results if row.cdms_pk is not None}
    pks = queryset.model._base_manager.filter(pk__in=queryset.values("pk"))
    return {str(k) for k in pks.values_list("cdms_pk", flat=True) if k is not None}


def recheck(model: type[CDMSModel], keys: set[str]) -> set[str]:
    """Read records by key (one read, split only by the URL limit); update the rows found,
    delete those whose record is gone. Returns the keys deleted."""
    mapping = model.cdms
    found = set()
    records = remote.client().iter(
        mapping.entity_set, filter=odata.Prop(mapping.key).isin(sorted(keys)), select=mapping.select
    )
    for page in _pages(records, remote.client().page_size):
        found.update(apply(model, page))
    gone = keys - found
    if gone:
        _delete_local(model, gone)
    return gone


def _delete_local(model: type[CDMSModel], keys: set[str]) -> None:
    logger.info("%s: %d rows deleted remotely, deleting them locally", model.__name__, len(keys))
    model._base_manager.filter(cdms_pk__in=keys).delete()


def apply(model: type[CDMSModel], records: list[dict], depth: int = 0) -> set[str]:
    """Write a page of remote records locally in one bulk write: create the new, update the
    changed, skip those whose ETag is the one stored. Returns their keys."""
    mapping = model.cdms
    keys = [str(r[mapping.key]) for r in records]
    existing = {str(row.cdms_pk): row for row in model._base_manager.filter(cdms_pk__in=keys)}
    related = _related_ids(model, records, depth)
    now = timezone.now()
    new, changed = [], []
    for record, key in zip(records, keys, strict=True):
        row = existing.get(key)
        if row is not None and row.cdms_etag == record.get("@odata.etag"):
            continue
        values = _values(mapping, record, related)
        if row is None:
            row = model(cdms_pk=key, **values)
            new.append(row)
        else:
            for attname, value in values.items():
                setattr(row, attname, value)
            row.modified = now
            changed.append(row)
    if new or changed:
        fields = [
            "cdms_etag",
            "cdms_modified",
            "modified",
            *(fm.field.attname for fm in mapping.fields),
        ]
        with transaction.atomic():
            model._base_manager.bulk_create(new, batch_size=500)
            model._base_manager.bulk_update(changed, fields, batch_size=500)
            _link_within(model, records, [*new, *changed])
    return set(keys)


def _link_within(model: type[CDMSModel], records: list[dict], rows: list) -> None:
    """Lookups from a model to itself whose target came in the same page (a parent and its
    subsidiary read together): set once both rows exist, in one more bulk write."""
    lookups = [fm for fm in model.cdms.fields if fm.is_lookup and fm.target is model]
    if not lookups or not rows:
        return
    by_key = {str(r[model.cdms.key]): r for r in records}
    wanted = {
        str(by_key[str(row.cdms_pk)].get(fm.remote))
        for row in rows
        for fm in lookups
        if by_key[str(row.cdms_pk)].get(fm.remote)
    }
    ids = {
        str(k): pk
        for k, pk in model._base_manager.filter(cdms_pk__in=wanted).values_list("cdms_pk", "pk")
    }
    linked = []
    for row in rows:
        record = by_key[str(row.cdms_pk)]
        for fm in lookups:
            target = ids.get(str(record.get(fm.remote)))
            if target is not None and getattr(row, fm.field.attname) != target:
                setattr(row, fm.field.attname, target)
                linked.append(row)
    if linked:
        model._base_manager.bulk_update(linked, [fm.field.attname for fm in lookups])


def _values(mapping, record: dict, related: dict) -> dict[str, Any]:
    values = {
        "cdms_etag": record.get("@odata.etag", ""),
        "cdms_modified": _modifiedon(record.get("modifiedon")),
    }
    for fm in mapping.fields:
        raw = record.get(fm.remote)
        if fm.is_lookup:
            values[fm.field.attname] = related[fm.field.name].get(str(raw)) if raw else None
        else:
            values[fm.field.attname] = fm.to_python(raw)
    return values


def _modifiedon(value: str | None):
    from dateutil.parser import isoparse

    return isoparse(value) if value else None


def _related_ids(model: type[CDMSModel], records: list[dict], depth: int) -> dict[str, dict]:
    """For each lookup, remote key -> local id of the related row. Related records missing
    locally are read in one request per lookup and written first."""
    result = {}
    for fm in model.cdms.fields:
        if not fm.is_lookup:
            continue
        target = fm.target
        wanted = {str(r[fm.remote]) for r in records if r.get(fm.remote)}
        known = dict(
            (str(k), pk)
            for k, pk in target._base_manager.filter(cdms_pk__in=wanted).values_list(
                "cdms_pk", "pk"
            )
        )
        missing = wanted - set(known)
        if target is model:
            missing -= {str(r[model.cdms.key]) for r in records}  # written in this same page
        if missing and depth < FOREIGN_KEY_DEPTH:
            fetched = list(
                remote.client().iter(
                    target.cdms.entity_set,
                    filter=odata.Prop(target.cdms.key).isin(sorted(missing)),
                    select=target.cdms.select,
                )
            )
            apply(target, fetched, depth + 1)
            known.update(
                (str(k), pk)
                for k, pk in target._base_manager.filter(cdms_pk__in=missing).values_list(
                    "cdms_pk", "pk"
                )
            )
        result[fm.field.name] = known
    return result
