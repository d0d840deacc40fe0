"""The sync engine: bring the local rows a queryset could return up to date with the remote.

1. The translator turns the queryset into a remote read that returns a superset of the true
   matches; its records are written locally one page at a time (new rows created, changed rows
   updated, rows whose ETag did not change skipped), in one bulk write per page.
2. The local query then runs. Any row it returns that the remote read did not (changed or
   deleted remotely) is re-checked by key, in one read for all of them, and updated or deleted;
   if that changed anything, the local query runs again.

Related rows the local query reads are brought up to date too, or it would answer from stale
ones: those it reads through a foreign key come with the records (``$expand``, no request of
their own; further foreign keys in one read by key each); those it reads through a one-to-many
relation are synced first by a read of their own when a condition selects them
(``translator.RelatedRead``), or, when it asks which exist or counts them, or only shows them
(annotations, values), those of every record read are synced after the main read (backfill).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import uuid
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.db import models, transaction
from django.db.models.fields.reverse_related import ManyToOneRel
from django.db.models.query import ModelIterable
from django.db.models.sql.datastructures import Join
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import CDMSNotSupported

from . import remote
from .mapping import Mapping
from .relations import LinkedKeys, columns
from .translator import RemotePlan, translate

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator")
MAX_SYNC_ROWS = 5000
FOREIGN_KEY_DEPTH = 3


class SyncLimitWarning(UserWarning):
    """A read matched more remote records than ``CDMS["MAX_SYNC_ROWS"]``; the rest was not
    synced (narrow the query, or raise the limit)."""


_local_only = contextvars.ContextVar("cdms_local_only", default=False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Within the block, syncing querysets answer from the local tables only (the related
    querysets a ``skip_cdms()`` queryset evaluates, as ``prefetch_related`` does)."""
    token = _local_only.set(True)
    try:
        yield
    finally:
        _local_only.reset(token)


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
    """The remote requests a queryset would make, as text: one line per read, the reads of
    related rows (numbered, as the main read's filter refers to them) first."""
    plan = plan_for(queryset)
    mapping = queryset.model.cdms
    lines = [f"#{n}: {describe(read.queryset)}" for n, read in enumerate(plan.related, 1)]
    if plan.filter is odata.FALSE:
        return "\n".join([*lines, f"(no request: nothing can match on {mapping.entity_set})"])
    params = {"$select": ",".join(mapping.select)}
    if plan.filter is not odata.TRUE:
        params["$filter"] = odata.render(plan.filter)
    if plan.orderby:
        params["$orderby"] = ",".join(plan.orderby)
    if plan.top is not None:
        params["$top"] = str(plan.top)
    expand = _expand(queryset.model, _forward_joins(queryset))
    if expand:
        params["$expand"] = ",".join(expand)
    lines.append(f"GET {mapping.entity_set}?{urlencode(params, safe='$,()/=')}")
    for link, related in dict.fromkeys([*plan.backfill, *_reverse_joins(queryset)]):
        lines.append(f"then: the {related.cdms.entity_set} whose {link} is a record read")
    return "\n".join(lines)


def _resolved(plan: RemotePlan) -> RemotePlan:
    """Sync the related reads, then put in the main filter the keys of the records they
    point at."""
    if not plan.related:
        return plan
    keys = {}
    for read in plan.related:
        sync(read.queryset)
        if read.link is not None:
            field = f"{read.link}__cdms_pk" if read.link else "cdms_pk"
            linked = read.queryset.skip_cdms().values_list(field, flat=True)
            keys[id(read)] = sorted({str(key) for key in linked if key is not None})
    return dataclasses.replace(plan, filter=_substitute(plan.filter, keys))


def _substitute(node: odata.Node, keys: dict[int, list[str]]) -> odata.Node:
    if isinstance(node, LinkedKeys):
        return odata.Prop(node.key).isin(keys[id(node.read)])
    if isinstance(node, odata.And):
        return odata.and_(*(_substitute(child, keys) for child in node.children))
    if isinstance(node, odata.Or):
        return odata.or_(*(_substitute(child, keys) for child in node.children))
    if isinstance(node, odata.Not):
        return odata.not_(_substitute(node.child, keys))
    return node


def _expand(model: type[CDMSModel], refresh: dict) -> list[str]:
    """``$expand`` for the foreign keys the query joins through: the related records come
    with the records read, to be refreshed with them."""
    items = []
    for name in refresh:
        fm = model.cdms.get(name)
        if fm is not None and fm.is_lookup:
            items.append(f"{fm.navigation}($select={','.join(fm.target.cdms.select)})")
    return items


def sync(queryset: models.QuerySet, results: bool = True) -> list[Any] | None:
    """Refresh what ``queryset`` could return, then evaluate it locally; returns its results
    (or None with ``results=False``: for ``count()`` and the like, which query for themselves,
    the rows are only checked by key, never built as objects)."""
    if _local_only.get():
        return list(queryset.skip_cdms()) if results else None
    if queryset.query.combinator:  # union(), intersection(), difference(): each part, then all
        for part in queryset.query.combined_queries:
            sync(_syncing(queryset.model, part), results=False)
        return list(queryset.skip_cdms()) if results else None
    model = queryset.model
    plan = _resolved(plan_for(queryset))
    seen, complete = set(), True
    refresh = _forward_joins(queryset)
    if plan.filter is not odata.FALSE:
        limit = remote.setting("MAX_SYNC_ROWS", MAX_SYNC_ROWS)
        records = remote.client().iter(
            model.cdms.entity_set,
            filter=None if plan.filter is odata.TRUE else plan.filter,
            select=model.cdms.select,
            orderby=plan.orderby or None,
            top=min(plan.top, limit + 1) if plan.top is not None else limit + 1,
            expand=_expand(model, refresh) or None,
        )
        for page in _pages(records, remote.client().page_size):
            if len(seen) + len(page) > limit:
                page = page[: limit - len(seen)]
                complete = False
            seen.update(apply(model, page, refresh=refresh))
            if not complete:
                warnings.warn(
                    f"{model.__name__}: more than {limit} remote records match; only the first "
                    f"{limit} were synced (MAX_SYNC_ROWS); narrow the query to see the rest",
                    SyncLimitWarning,
                    stacklevel=3,
                )
                break
    # the local query, without its prefetches: the caller's queryset makes them, syncing
    local = queryset.skip_cdms()
    local._prefetch_related_lookups = ()
    if complete:
        _backfill(queryset, local, plan, seen)

    def evaluate() -> list[Any] | None:
        return list(local.all()) if results else None

    rows = evaluate()
    if not complete:
        return rows
    checked = set(seen)
    # a recheck that deletes or updates rows can bring other rows into the results (a parent
    # deleted sets its subsidiaries' parent to null): check until every row returned is fresh
    while stale := _keys_of(local, rows) - checked:
        checked |= stale
        if plan.keys is not None:
            if gone := stale & plan.keys:
                _delete_local(model, gone)
            stale -= plan.keys
        if stale:
            recheck(model, stale, refresh)
        rows = evaluate()
    return rows


def _syncing(model: type[CDMSModel], query) -> models.QuerySet:
    from .manager import CDMSQuerySet

    return CDMSQuerySet(model, query=query.chain())


def _pages(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while page := list(islice(iterator, size)):
        yield page


def _keys_of(queryset: models.QuerySet, rows: list[Any] | None) -> set[str]:
    """Remote keys of the rows the local query returns: from its objects when it was
    evaluated to objects, otherwise by a query of their keys alone."""
    if rows is not None and issubclass(queryset._iterable_class, ModelIterable):
        return {str(row.cdms_pk) for row in rows if row.cdms_pk is not None}
    pks = queryset.model._base_manager.filter(pk__in=queryset.values("pk"))
    return {str(k) for k in pks.values_list("cdms_pk", flat=True) if k is not None}


def _forward_joins(queryset: models.QuerySet) -> dict[str, dict]:
    """The foreign keys the query joins through from its model, as a tree ``{name: {...}}``
    (``parent__parent__name`` -> ``{"parent": {"parent": {}}}``), and those it selects
    related (``select_related``): the local query reads the related rows too, so a read
    refreshes them along with the records."""
    query = queryset.query
    trees: dict[str, dict] = {query.base_table: {}} if query.base_table else {}
    for alias, join in query.alias_map.items():  # a join comes after the one it starts from
        forward = isinstance(join, Join) and isinstance(join.join_field, models.ForeignKey)
        used = query.alias_refcount.get(alias)  # not a join trimmed away (organisation__in)
        if forward and used and join.parent_alias in trees:
            trees[alias] = trees[join.parent_alias].setdefault(join.join_field.name, {})
    tree = trees.get(query.base_table, {})
    if isinstance(query.select_related, dict):
        _merge(tree, query.select_related)
    return tree


def _merge(tree: dict, more: dict) -> None:
    for name, subtree in more.items():
        _merge(tree.setdefault(name, {}), subtree)


def _reverse_joins(queryset: models.QuerySet) -> list[tuple[str, type]]:
    """The one-to-many relations the query reads (in annotations, values, ordering) beyond
    its conditions, as (foreign key on the related model, related model)."""
    query = queryset.query
    conditioned = {col.alias for col in columns(query.where)}
    found = []
    for alias, join in query.alias_map.items():
        relation = getattr(join, "join_field", None)
        if (
            isinstance(relation, ManyToOneRel)
            and join.parent_alias == query.base_table
            and query.alias_refcount.get(alias)
            and alias not in conditioned
            and isinstance(getattr(relation.related_model, "cdms", None), Mapping)
            and relation.related_model.cdms.get(relation.field.name) is not None
        ):
            found.append((relation.field.name, relation.related_model))
    return found


def _backfill(
    queryset: models.QuerySet, local: models.QuerySet, plan: RemotePlan, seen: set[str]
) -> None:
    """Sync the related rows, through the one-to-many relations the query reads without a
    read of their own (``plan.backfill``, annotations, values, ordering), of every row it could
    return: those the main read returned, and those the local query returns (ignoring its
    slice, which may depend on them). One read per relation."""
    reverse = dict.fromkeys([*plan.backfill, *_reverse_joins(queryset)])
    if not reverse:
        return
    model = queryset.model
    unsliced = local._chain()
    unsliced.query.clear_limits()
    pks = set(model._base_manager.filter(pk__in=unsliced.values("pk")).values_list("pk", flat=True))
    pks.update(model._base_manager.filter(cdms_pk__in=seen).values_list("pk", flat=True))
    from .manager import CDMSQuerySet

    for link, related in reverse:
        sync(CDMSQuerySet(related).filter(**{f"{link}__in": sorted(pks)}))


def recheck(model: type[CDMSModel], keys: set[str], refresh: dict | None = None) -> set[str]:
    """Read records by key (one read, split only by the URL limit); update the rows found,
    delete those whose record is gone. Returns the keys deleted."""
    mapping = model.cdms
    found = set()
    records = remote.client().iter(
        mapping.entity_set,
        filter=odata.Prop(mapping.key).isin(sorted(keys)),
        select=mapping.select,
        expand=_expand(model, refresh or {}) or None,
    )
    for page in _pages(records, remote.client().page_size):
        found.update(apply(model, page, refresh=refresh))
    gone = keys - found
    if gone:
        _delete_local(model, gone)
    return gone


def _delete_local(model: type[CDMSModel], keys: set[str]) -> None:
    logger.info("%s: %d rows deleted remotely, deleting them locally", model.__name__, len(keys))
    model._base_manager.filter(cdms_pk__in=keys).delete()


def apply(
    model: type[CDMSModel], records: list[dict], depth: int = 0, refresh: dict | None = None
) -> set[str]:
    """Write a page of remote records locally in one bulk write: create the new, update the
    changed, skip those whose ETag is the one stored. Returns their keys. The related rows of
    the lookups named in ``refresh`` (a tree, see ``_forward_joins``) are read again too, not
    only when missing locally."""
    mapping = model.cdms
    keys = [_key(r[mapping.key]) for r in records]
    related = _related_ids(model, records, depth, refresh or {})  # may write some records first
    existing = {str(row.cdms_pk): row for row in model._base_manager.filter(cdms_pk__in=keys)}
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
            # another process may have brought the same record in meanwhile: its row is updated
            model._base_manager.bulk_create(
                new,
                batch_size=500,
                update_conflicts=True,
                unique_fields=["cdms_pk"],
                update_fields=fields,
            )
            model._base_manager.bulk_update(changed, fields, batch_size=500)
            _link_within(model, records, [*new, *changed])
    return set(keys)


def _link_within(model: type[CDMSModel], records: list[dict], rows: list) -> None:
    """Lookups from a model to itself whose target came in the same page (a parent and its
    subsidiary read together): set once both rows exist, in one more bulk write."""
    lookups = [fm for fm in model.cdms.fields if fm.is_lookup and fm.target is model]
    if not lookups or not rows:
        return
    by_key = {_key(r[model.cdms.key]): r for r in records}
    wanted = {
        _key(by_key[str(row.cdms_pk)][fm.remote])
        for row in rows
        for fm in lookups
        if by_key[str(row.cdms_pk)].get(fm.remote)
    }
    ids = {
        str(k): pk
        for k, pk in model._base_manager.filter(cdms_pk__in=wanted).values_list("cdms_pk", "pk")
    }
    every_lookup = [fm for fm in model.cdms.fields if fm.is_lookup]
    linked = []
    for row in rows:
        record = by_key[str(row.cdms_pk)]
        found = [ids.get(_key(record[fm.remote])) for fm in lookups if record.get(fm.remote)]
        if not any(found):
            continue
        for fm in lookups:
            if record.get(fm.remote):
                setattr(row, fm.field.attname, ids.get(_key(record[fm.remote])))
        if all(
            getattr(row, fm.field.attname) is not None or not record.get(fm.remote)
            for fm in every_lookup
        ):
            row.cdms_etag = record.get("@odata.etag", "")  # resolved after all
        linked.append(row)
    if linked:
        fields = ["cdms_etag", *(fm.field.attname for fm in lookups)]
        model._base_manager.bulk_update(linked, fields)


def _values(mapping, record: dict, related: dict) -> dict[str, Any]:
    values = {
        "cdms_etag": record.get("@odata.etag", ""),
        "cdms_modified": _modifiedon(record.get("modifiedon")),
    }
    for fm in mapping.fields:
        raw = record.get(fm.remote)
        if fm.is_lookup:
            values[fm.field.attname] = related[fm.field.name].get(_key(raw)) if raw else None
            if raw and values[fm.field.attname] is None:
                values["cdms_etag"] = ""  # a lookup not resolved yet: the next read redoes it
        else:
            values[fm.field.attname] = fm.to_python(raw)
    return values


def _key(value: Any) -> str:
    """A remote key in one spelling (lower case), however the remote wrote it."""
    return str(uuid.UUID(str(value)))


def _modifiedon(value: str | None):
    from dateutil.parser import isoparse

    return isoparse(value) if value else None


def _related_ids(
    model: type[CDMSModel], records: list[dict], depth: int, refresh: dict
) -> dict[str, dict]:
    """For each lookup, remote key -> local id of the related row. Related records missing
    locally are read in one request per lookup and written first; those in ``refresh`` are
    written first in any case, from the records' ``$expand`` when they came with it."""
    result = {}
    for fm in model.cdms.fields:
        if not fm.is_lookup:
            continue
        target = fm.target
        wanted = {_key(r[fm.remote]) for r in records if r.get(fm.remote)}
        refreshed = fm.field.name in refresh
        if refreshed and all(fm.navigation in r for r in records):
            # they came with the records ($expand): written first, no request of their own
            expanded = {_key(e[target.cdms.key]): e for r in records if (e := r[fm.navigation])}
            apply(target, list(expanded.values()), depth + 1, refresh[fm.field.name])
            refreshed = False
        known = dict(
            (str(k), pk)
            for k, pk in target._base_manager.filter(cdms_pk__in=wanted).values_list(
                "cdms_pk", "pk"
            )
        )
        missing = set(wanted) if refreshed else wanted - set(known)
        if target is model:
            missing -= {_key(r[model.cdms.key]) for r in records}  # written in this same page
        if missing and depth < FOREIGN_KEY_DEPTH:
            fetched = list(
                remote.client().iter(
                    target.cdms.entity_set,
                    filter=odata.Prop(target.cdms.key).isin(sorted(missing)),
                    select=target.cdms.select,
                )
            )
            apply(target, fetched, depth + 1, refresh.get(fm.field.name))
            known.update(
                (str(k), pk)
                for k, pk in target._base_manager.filter(cdms_pk__in=missing).values_list(
                    "cdms_pk", "pk"
                )
            )
        result[fm.field.name] = known
    return result
