"""The sync engine: bring every local row a query can return up to date with the remote, just
before Django runs the query (``query.CDMSQuery`` calls ``refresh``).

1. The translator turns the query into a remote plan that selects a superset of the true
   matches; the related reads it needs run first. The records read are stored by the loader
   one page at a time (new rows created, changed rows updated, unchanged ETags skipped).
2. Then the local rows the query can return (up to the end of its slice, since rows before
   an offset decide which rows fall in it) that the remote read did not return are re-checked
   by key, in one read for all of them: updated, or deleted when the remote no longer has
   them. A local row is deleted only on that evidence: absent from a complete read by key.
3. Related rows the query reads are brought up to date too: those read through a foreign key
   come with the records (``$expand``); those read through a one-to-many relation are synced
   by a read of their own first (``RelatedRead``), or those of every record read after the
   main read (``plan.backfill``).
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
import warnings
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.apps import apps
from django.db import models, transaction
from django.db.models.expressions import Col, RawSQL
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.query import Query
from django.db.models.sql.where import ExtraWhere, WhereNode

from cdms_api import odata
from cdms_api.client import Top
from cdms_api.errors import CDMSError, CDMSNotSupported, FilterTooLong, NotFound

from . import local, remote
from .feed import catch_up, reads_changes
from .loader import Stored, answered, key_of, load, noting_writes
from .mapping import Mapping
from .relations import LinkedKeys
from .tombstones import bury
from .translator import RemotePlan, expand_of, translate
from .upsert import stored_etags

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator")
MAX_SYNC_ROWS = 5000


class SyncLimitWarning(UserWarning):
    """A read whose filter was relaxed to nothing reads the whole entity set (full reads
    allowed), bounded by ``CDMS["MAX_SYNC_ROWS"]``."""


class SyncLimitExceeded(CDMSNotSupported):
    """A read matched more remote records than ``CDMS["MAX_SYNC_ROWS"]``: its answer would be
    incomplete, so none is given (the records up to the limit are stored)."""


def plan_for(query: Query) -> RemotePlan:
    """The remote plan of a query; a read that would constrain nothing is refused unless full
    reads are allowed."""
    plan = translate(query)
    model = query.model
    if plan.filter is odata.TRUE and plan.relaxed:
        if not (model.cdms.allow_full_reads or remote.setting("ALLOW_FULL_READS", False)):
            raise CDMSNotSupported(
                f"The remote cannot serve {', '.join(plan.relaxed)} on {model.__name__}: "
                f"without it the read would fetch the whole '{model.cdms.entity_set}' entity "
                "set. Add a condition the remote can filter on, use skip_cdms() for a "
                "local-only query, or allow full reads (CDMS['ALLOW_FULL_READS'] or "
                "CDMS.allow_full_reads on the model)."
            )
        warnings.warn(
            f"{model.__name__}: {', '.join(plan.relaxed)} cannot be filtered remotely; "
            "reading the entity set, bounded by MAX_SYNC_ROWS",
            SyncLimitWarning,
            stacklevel=2,
        )
    return plan


def describe(query: Query) -> str:
    """The remote requests a query would make, as text: one line per read, the reads of
    related rows (numbered, as the main read's filter refers to them) first."""
    plan = plan_for(query)
    mapping = query.model.cdms
    lines = [f"#{n}: {describe(read.query)}" for n, read in enumerate(plan.related, 1)]
    if plan.filter is odata.FALSE:
        return "\n".join([*lines, f"(no request: nothing can match on {mapping.entity_set})"])
    for node in top_filters(plan):
        params = {"$select": ",".join(mapping.select)}
        if node is not odata.TRUE:
            params["$filter"] = odata.render(node)
        if plan.orderby:
            params["$orderby"] = ",".join(plan.orderby)
        if plan.top is not None:
            params["$top"] = str(plan.top)
        if plan.expand:
            params["$expand"] = ",".join(plan.expand)
        lines.append(f"GET {mapping.entity_set}?{urlencode(params, safe='$,()/=')}")
    for link, related in plan.backfill:
        lines.append(f"then: the {related.cdms.entity_set} whose {link} is a record read")
    return "\n".join(lines)


def refresh(query: Query) -> None:
    """Bring every local row ``query`` can return up to date (see the module's docstring).
    A query that reads only models backed by the change feed applies their feeds instead
    (``feed``); the local query then answers exactly."""
    if _read_by_pk(query):
        return
    synced = [m for m in models_read(query) if isinstance(getattr(m, "cdms", None), Mapping)]
    if synced and all(reads_changes(m) for m in synced):
        for model in synced:
            catch_up(model)
        decided(query.model, "changes", note="answered locally after the change feed")
        return
    if query.combinator:  # union(), intersection(), difference(): each part
        for part in query.combined_queries:
            refresh(part)
        return
    model = query.model
    plan = _resolved(plan_for(query))
    seen, stored, prechecked, written = set(), None, set(), {}
    if plan.filter is not odata.FALSE:
        stored = Stored(window_etags(query))
        with noting_writes() as written:
            seen, prechecked = _read_plan(query, plan, stored)
    _backfill(query, plan, seen)
    if getattr(query, "cdms_exists", False) and plan.top is not None and _selects_any(query, seen):
        # exists(): a record the exact read returned is stored and matches: True
        _decided_read(model, plan, seen, note="exists() answered by the record read")
        return
    # The read answered for every key of its filter unless $top cut it short: only then is a
    # key it did not return known to be gone.
    cut_short = plan.top is not None and len(seen) >= plan.top
    answered = plan.keys if plan.keys is not None and not cut_short else frozenset()
    # as the open migrator.atomic() left them
    checked = set(seen) | prechecked | set(local.pending(model))
    # A recheck that deletes or updates rows can bring other rows into the window (a parent
    # deleted sets its subsidiaries' parent to null): check until every row in it is fresh.
    # A read that wrote nothing, and synced no related rows, left the window as it was; so did
    # one that wrote only records it read (all checked), when no other row's place in the
    # window depends on them.
    unchanged = (
        stored is not None
        and not (plan.backfill or plan.refresh or stored.deleted)
        and (
            not stored.wrote
            or (written.get(model, set()) <= seen | prechecked and own_rows_only(query))
        )
    )
    window = set(stored.etags) if unchanged else window_keys(query)
    rechecked, deleted = len(prechecked), 0
    while stale := window - checked:
        checked |= stale
        if gone := stale & answered:
            delete_local(model, gone)
            deleted += len(gone)
        if stale - answered:
            recheck(model, stale - answered, plan.refresh)
            rechecked += len(stale - answered)
        window = window_keys(query)
    _decided_read(model, plan, seen, rechecked=rechecked, deleted=deleted)


def _decided_read(model: type[CDMSModel], plan: RemotePlan, seen: set[str], **fields) -> None:
    decided(
        model,
        "none" if plan.filter is odata.FALSE else "filtered",
        filter=None if plan.filter in (odata.TRUE, odata.FALSE) else odata.render(plan.filter),
        top=plan.top,
        expand=plan.expand or None,
        related=len(plan.related),
        records=len(seen),
        **fields,
    )


def decided(model: type[CDMSModel], read: str, **fields) -> None:
    """One log line per synced query saying what it read and why (``migrator`` logger, DEBUG),
    the figures also as the record's ``cdms`` attribute for a structured formatter."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    fields = {"model": model._meta.label, "read": read, **fields}
    text = ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None and k != "model")
    logger.debug("%s: sync %s", model._meta.label, text, extra={"cdms": fields})


def _read_plan(query: Query, plan: RemotePlan, stored: Stored) -> tuple[set[str], set[str]]:
    """The remote read of a plan: the keys it returned, and those of the stored rows it
    re-checked by key along with it."""
    model = query.model
    keyed = _read_by_key(model, plan, stored)
    if keyed is not None:
        return keyed, set()
    if not getattr(query, "cdms_exists", False):  # exists() answers from the top record alone
        both = _read_top_with_window(model, plan, stored)
        if both is not None:
            return both
    if getattr(query, "cdms_aggregate", False):
        keyed_first = _read_keys_first(model, plan, stored)
        if keyed_first is not None:
            return keyed_first
    return _read(model, plan, stored), set()


def _read_keys_first(
    model: type[CDMSModel], plan: RemotePlan, stored: Stored
) -> tuple[set[str], set[str]] | None:
    """The read of ``count()`` or ``aggregate()`` over stored rows: the keys and ETags of
    the matching records (``$select`` of the key alone), then in one read by key the records
    new or changed since they were stored and the stored rows of the window the first read
    did not return; a record that read does not return is gone. Returns the keys matching
    and those re-checked; None when no rows are stored, the plan limits or joins (``$top``,
    related rows), or more records than ``MAX_SYNC_ROWS`` match: the full read does it."""
    if not stored.etags or plan.top is not None or plan.refresh or plan.backfill:
        return None
    mapping, client = model.cdms, remote.client()
    limit = remote.setting("MAX_SYNC_ROWS", MAX_SYNC_ROWS)
    records = client.iter(
        mapping.entity_set,
        filter=None if plan.filter is odata.TRUE else plan.filter,
        select=[mapping.key],
        top=limit + 1,
    )
    with answered(model):
        matching = {key_of(r[mapping.key]): r.get("@odata.etag") for r in records}
    if len(matching) > limit:
        return None
    etags = {key: stored.etags[key] for key in matching if key in stored.etags}
    etags.update(stored_etags(model, [key for key in matching if key not in etags]))
    changed = {key for key, etag in matching.items() if etags.get(key) != etag}
    unmatched = set(stored.etags) - set(matching) - set(local.pending(model))
    found = set()
    wanted = changed | unmatched
    for page in _pages(
        client.records(mapping.entity_set, wanted, mapping.select), client.page_size
    ):
        found.update(load(model, page, stored=stored))
    if gone := wanted - found:
        delete_local(model, gone)
        stored.deleted = True  # rows may have come into the window in their place
    return set(matching) - gone, unmatched


def top_filters(plan: RemotePlan) -> list[odata.Node]:
    """The filter of each read of the plan's first records: one, or one for each of its
    ``halves``."""
    if plan.halves is None:
        return [plan.filter]
    return [odata.and_(plan.filter, half) for half in plan.halves]


def _read_top_with_window(
    model: type[CDMSModel], plan: RemotePlan, stored: Stored
) -> tuple[set[str], set[str]] | None:
    """A read of the first records (``qs[:10]``, or of each of the plan's ``halves``) and the
    re-check by key of the stored rows the local answer can depend on (``stored``: its window
    before the read), together in one ``$batch`` request. Returns the keys the top reads
    returned and those re-checked (a row whose record the keyed read does not return is
    deleted); None when the plan is no such read (no ``$top``, more than a page, related rows
    to sync after it), a single top read has no window to go with, or the reads are too long
    for a batch: the plain read and re-check do it."""
    client = remote.client()
    window = set(stored.etags) - set(local.pending(model))
    limit = min(client.page_size, remote.setting("MAX_SYNC_ROWS", MAX_SYNC_ROWS))
    if plan.top is None or plan.top > limit or plan.backfill or not (window or plan.halves):
        return None
    mapping, expand = model.cdms, plan.expand or None
    reads = [
        Top(
            filter=None if node is odata.TRUE else node,
            top=plan.top,
            select=mapping.select,
            orderby=plan.orderby or None,
            expand=expand,
        )
        for node in top_filters(plan)
    ]
    if window:
        reads.append(
            Top(
                filter=odata.Prop(mapping.key).isin(sorted(window)),
                top=len(window),  # no more than the slice's end: within a page
                select=mapping.select,
                expand=expand,
            )
        )
    try:
        answers = client.tops(mapping.entity_set, reads)
    except FilterTooLong:
        return None
    tops = len(reads) - bool(window)
    top = [record for answer in answers[:tops] for record in answer]
    keyed = [record for answer in answers[tops:] for record in answer]
    seen = load(model, top, refresh=plan.refresh, stored=stored)
    with answered(model):  # the records both reads returned are stored once
        rest = [record for record in keyed if key_of(record[mapping.key]) not in seen]
    found = load(model, rest, refresh=plan.refresh, stored=stored)
    if gone := window - seen - found:
        delete_local(model, gone)
        stored.deleted = True  # rows may have come into the window in their place
    return seen, window


def _read(model: type[CDMSModel], plan: RemotePlan, stored: Stored) -> set[str]:
    """The filtered read, stored page by page; returns the keys read."""
    seen: set[str] = set()
    limit = remote.setting("MAX_SYNC_ROWS", MAX_SYNC_ROWS)
    records = remote.client().iter(
        model.cdms.entity_set,
        filter=None if plan.filter is odata.TRUE else plan.filter,
        select=model.cdms.select,
        orderby=plan.orderby or None,
        # the halves' first records are not the first of one read: every match is read
        top=limit + 1 if plan.top is None or plan.halves else min(plan.top, limit + 1),
        expand=plan.expand or None,
    )
    for page in _pages(records, remote.client().page_size):
        room = limit - len(seen)
        seen.update(load(model, page[:room], refresh=plan.refresh, stored=stored))
        if len(page) > room:
            raise SyncLimitExceeded(
                f"More than {limit} {model.cdms.entity_set} records match a read of "
                f"{model.__name__}, the most one read brings in (CDMS['MAX_SYNC_ROWS']): its "
                "answer would be incomplete. Narrow the query, raise the limit, or back the "
                "model's reads by the change feed (CDMS.reads = 'changes'), which answers "
                "exactly at any size."
            )
    return seen


def _read_by_key(model: type[CDMSModel], plan: RemotePlan, stored: Stored) -> set[str] | None:
    """A read of one record whose row the query selects (``get(cdms_pk=...)``): a keyed GET
    (``_get_stored``). Returns the key when the record is there, nothing when it is gone; None
    when the plan is no such read (the filtered read does it)."""
    if plan.keys is None or len(plan.keys) != 1 or plan.expand:
        return None
    key = key_of(next(iter(plan.keys)))
    etag = stored.etags.get(key)
    if not etag:
        return None
    return {key} if _get_stored(model, key, stored, plan.refresh) else set()


def _read_by_pk(query: Query) -> bool:
    """``get(pk=...)`` (``filter(pk=...)``) of a row stored with its ETag: its key and ETag
    read in one local statement, then the keyed GET (``_recheck_by_pk``), no translation, no
    window. False, having done nothing, for any other query."""
    pk = by_local_pk(query)
    version = None if pk is None else local.stored_version(query.model, pk)
    if version is None:
        return False
    _recheck_by_pk(query.model, *version)
    return True


def version_columns(compiler: SQLCompiler) -> tuple[int, int] | None:
    """Where the key and the ETag are among the columns the compiler's query reads from its
    model's table; None when either is left out (``only()``, ``values()``). A query of every
    column (``get(pk=...)`` as usually written) has them where its model has them: found
    without setting the compiler up, which it does again to run."""
    query = compiler.query
    if query.default_cols and query.deferred_loading == (frozenset(), True):
        names = [field.attname for field in query.model._meta.concrete_fields]
        return names.index("cdms_pk"), names.index("cdms_etag")
    compiler.setup_query()
    columns = {
        expression.target.attname: i
        for i, (expression, _, _) in enumerate(compiler.select)
        if isinstance(expression, Col) and expression.alias == query.base_table
    }
    if not {"cdms_pk", "cdms_etag"} <= columns.keys():
        return None
    return columns["cdms_pk"], columns["cdms_etag"]


def rows_still_current(query: Query, version: tuple[int, int], rows: list) -> bool | None:
    """After the local query of ``get(pk=...)`` ran first (``by_local_pk``), its rows showing
    the key and ETag at ``version`` (``version_columns``): the keyed GET of the row it
    returned, with ``If-None-Match`` on the ETag the row holds. True when the record is
    unchanged (304): the rows are the answer, one local statement in all; False when the row
    was written or deleted: the local query must run again. None when the rows are no single
    synced row (the full sync does it)."""
    if len(rows) != 1:
        return None
    key, etag = rows[0][version[0]], rows[0][version[1]]
    if key is None or not etag:
        return None
    return _recheck_by_pk(query.model, str(uuid.UUID(str(key))), etag)


def _recheck_by_pk(model: type[CDMSModel], key: str, etag: str) -> bool:
    """The keyed GET of a stored row (``_get_stored``); its row deleted when the record is
    gone. Returns whether the row was left as it was."""
    stored = Stored({key: etag})
    found = _get_stored(model, key, stored)
    if not found:
        delete_local(model, {key})
    decided(model, "key", records=int(found), deleted=int(not found))
    return found and not stored.wrote


def by_local_pk(query: Query) -> Any:
    """The primary key of ``get(pk=...)`` of a synced model outside a ``migrator.atomic()``
    block (whose pending writes the full path leaves as the block made them); None for any
    other query."""
    pk = _by_local_pk(query)
    if pk is None or local.block() is not None or reads_changes(query.model):
        return None
    return pk


def _by_local_pk(query: Query) -> Any:
    """The primary key a query of its model's table alone selects by, and by nothing else
    (``pk=...``, ``id=...``); None for any other query, and for a model whose fields span
    the tables of several models (multi-table inheritance)."""
    model = query.model
    if (
        model._meta.parents
        or query.combinator
        or query.select_related
        or query.annotations
        or query.extra
        or query.group_by is not None
        or len(query.alias_map) != 1
        or not isinstance(getattr(model, "cdms", None), Mapping)
    ):
        return None
    where = query.where
    if where.negated or len(where.children) != 1:
        return None
    [lookup] = where.children
    if (
        getattr(lookup, "lookup_name", None) != "exact"
        or not isinstance(lookup.lhs, Col)
        or lookup.lhs.target is not model._meta.pk
        or lookup.rhs is None
        or hasattr(lookup.rhs, "resolve_expression")
    ):
        return None
    return lookup.rhs


def _get_stored(
    model: type[CDMSModel], key: str, stored: Stored, refresh: dict | None = None
) -> bool:
    """The record of a stored row read by key with ``If-None-Match`` on the stored ETag,
    which the remote answers 304, and nothing is written, while the record is unchanged.
    Stores a changed record. Returns whether it is there."""
    mapping = model.cdms
    etag = stored.etags[key]
    try:
        record = remote.client().get(mapping.entity_set, key, select=mapping.select, etag=etag)
    except NotFound:
        return False
    if record is not None:
        load(model, [record], refresh=refresh, stored=stored)
    return True


def _resolved(plan: RemotePlan) -> RemotePlan:
    """Sync the related reads, then put in the main filter the keys of the records they
    point at."""
    if not plan.related:
        return plan
    keys = {}
    for read in plan.related:
        refresh(read.query)
        if read.link is not None:
            field = f"{read.link}__cdms_pk" if read.link else "cdms_pk"
            linked = models.QuerySet(read.query.model, query=local_query(read.query))
            keys[id(read)] = sorted(
                {str(key) for key in linked.values_list(field, flat=True) if key is not None}
            )
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


def models_read(query: Query) -> list[type[models.Model]]:
    """Every model whose table the query reads: its own, those it joins, those of its
    subqueries and combined queries."""
    by_table = {m._meta.db_table: m for m in apps.get_models()}
    found = [query.model]
    for join in query.alias_map.values():
        if (model := by_table.get(join.table_name)) and model not in found:
            found.append(model)
    parts = [*query.combined_queries, *_subqueries([query.where, *query.annotations.values()])]
    for part in parts:
        found += [m for m in models_read(part) if m not in found]
    return found


def own_rows_only(query: Query) -> bool:
    """Whether a row's place in the query's window depends on its own columns only: one
    table, conditions with no subquery, raw SQL, aggregate or window function, no grouping
    and no slice, all of which look at other rows."""
    where = query.where
    joined = [a for a in query.alias_map if a != query.base_table and query.alias_refcount.get(a)]
    return (
        not joined  # a join Django made and then trimmed away is left unused
        and not query.extra_tables
        and query.low_mark == 0
        and query.high_mark is None
        and query.group_by is None
        and not query.distinct_fields
        and not where.contains_aggregate
        and not where.contains_over_clause
        and not any(isinstance(node, RawSQL | ExtraWhere) for node in _nodes([where]))
        and not any(_subqueries([where]))
    )


def _subqueries(expressions: list) -> Iterator[Query]:
    for node in _nodes(expressions):
        if isinstance(node, Query):
            yield node
        elif isinstance(inner := getattr(node, "query", None), Query):  # Exists(), Subquery()
            yield inner


def _nodes(expressions: list) -> Iterator:
    """The expressions and every expression within them, but for those of subqueries."""
    for expression in expressions:
        yield expression
        if isinstance(expression, Query):
            continue
        children = getattr(expression, "children", None)  # a WhereNode
        if children is None and hasattr(expression, "get_source_expressions"):
            children = [
                *expression.get_source_expressions(),
                getattr(expression, "rhs", None),  # a lookup's value: a queryset's Query
            ]
        yield from _nodes([c for c in children or [] if c is not None])


def local_query(query: Query) -> Query:
    """A copy of ``query`` that runs locally."""
    copy = query.chain()
    copy.cdms_sync = False
    return copy


def window_keys(query: Query) -> set[str]:
    """Remote keys of the local rows the query can return or depends on: those its conditions
    select, up to the end of its slice (the rows before an offset decide the window); every
    row its conditions select when it groups or aggregates."""
    return set(window_etags(query))


def window_etags(query: Query) -> dict[str, str]:
    """``window_keys``, each with the ETag its row holds."""
    window = local_query(query)
    if window.group_by is not None or window.distinct_fields:
        window.group_by = None
        window.where = window.where.split_having_qualify()[0] or WhereNode()  # all HAVING
        window.distinct_fields = ()
        window.clear_ordering(force=True)
        window.clear_limits()
    else:
        high = window.high_mark
        window.clear_limits()
        window.set_limits(high=high)
    pks = models.QuerySet(query.model, query=window).values("pk")
    rows = local.rows(query.model).filter(pk__in=pks).values_list("cdms_pk", "cdms_etag")
    return {str(key): etag for key, etag in rows if key is not None}


def _selects_any(query: Query, keys: set[str]) -> bool:
    """Whether the local query, its slice aside, selects a row of one of ``keys``."""
    if not keys:
        return False
    selected = local_query(query)
    selected.clear_limits()
    pks = models.QuerySet(query.model, query=selected).values("pk")
    return local.rows(query.model).filter(pk__in=pks, cdms_pk__in=keys).exists()


def _pages(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while page := list(islice(iterator, size)):
        yield page


def _backfill(query: Query, plan: RemotePlan, seen: set[str]) -> None:
    """Sync the related rows, through the one-to-many relations the query reads without a
    read of their own (``plan.backfill``), of every row it could return: those the main read
    returned, and those the local query selects (ignoring its slice, which may depend on
    them). One read per relation."""
    if not plan.backfill:
        return
    model = query.model
    unsliced = local_query(query)
    unsliced.clear_limits()
    selected = models.QuerySet(model, query=unsliced).values("pk")
    pks = set(local.rows(model).filter(pk__in=selected).values_list("pk", flat=True))
    pks.update(local.rows(model).filter(cdms_pk__in=seen).values_list("pk", flat=True))
    for link, related in plan.backfill:
        refresh(local.rows(related).filter(**{f"{link}__in": sorted(pks)}).query)


def recheck(model: type[CDMSModel], keys: set[str], refresh: dict | None = None) -> set[str]:
    """Read records by key (one read, split only by the URL limit); update the rows found,
    delete those whose record is gone. Returns the keys deleted."""
    mapping = model.cdms
    found = set()
    records = remote.client().iter(
        mapping.entity_set,
        filter=odata.Prop(mapping.key).isin(sorted(keys)),
        select=mapping.select,
        expand=expand_of(model, refresh or {}) or None,
    )
    for page in _pages(records, remote.client().page_size):
        found.update(load(model, page, refresh=refresh))
    gone = keys - found
    if gone:
        delete_local(model, gone)
    return gone


def reread(model: type[CDMSModel], keys: set[str]) -> None:
    """Read again the rows a remote write changed behind them (a delete clears the lookups
    pointing at its record), once the write is done. A read that fails does not undo the
    write: the rows are left to the next read (logged), their ETags stale until then (a save
    of one meanwhile fails on its ETag)."""
    try:
        recheck(model, keys)
    except CDMSError as error:
        logger.warning(
            "%s: %d rows not read again after a remote write, left to the next read: %s",
            model.__name__,
            len(keys),
            error,
        )


def delete_local(model: type[CDMSModel], keys: set[str]) -> None:
    """Delete the rows of records the remote no longer has. Django's collector applies
    ``on_delete`` to the local rows that point at them, reading them locally."""
    logger.info("%s: %d rows deleted remotely, deleting them locally", model.__name__, len(keys))
    rows = local.rows(model).filter(cdms_pk__in=keys)
    with transaction.atomic(using=rows.db):
        etags = {str(key): etag for key, etag in rows.values_list("cdms_pk", "cdms_etag")}
        with local.local_only():
            rows.delete()
        bury(model, etags)
