"""``count()`` answered by the remote: ``django.db.models.sql.query.Query.get_count`` with one
``$count`` request, when the remote filter selects exactly the rows Django's query counts.

The remote is the system of record: the number of records its exact filter matches is the
number of rows a sync would leave the local query to count, without reading them. Rows that
exist only locally (no remote key, made with ``skip_cdms``) are never synced and always
counted, so a local count adds them. Any other query, a count past what Dataverse counts
(5,000), or a filter too long for one URL is left to the sync and Django's count.
"""

from __future__ import annotations

from django.db import models
from django.db.models.sql.query import Query

from cdms_api import odata
from cdms_api.errors import FilterTooLong

from . import local, remote
from .feed import reads_changes
from .loader import stored_only
from .sync import decided, local_query, own_rows_only
from .translator import translate


def remote_count(query: Query, using: str) -> int | None:
    """The number of rows ``query`` counts once synced, from one ``$count`` request and one
    local count of the rows that have no remote key; None, having sent nothing, when the
    remote cannot answer exactly (``countable``), and when more records match than it counts
    or the filter does not fit in one URL (having sent the request, or not)."""
    model = query.model
    stored = stored_only(model.cdms)
    if stored is None or not countable(query):
        return None
    plan = translate(query)
    if not plan.exact or plan.related or plan.backfill or plan.refresh:
        return None
    if plan.filter is odata.FALSE:
        return None  # nothing can match remotely: the sync makes no request either
    node = odata.and_(plan.filter, *stored)
    try:
        counted = remote.client().exact_count(
            model.cdms.entity_set, None if node is odata.TRUE else node
        )
    except FilterTooLong:
        return None
    if counted is None:
        decided(model, "count", note="more records match than $count counts")
        return None
    keyless = local_query(query)
    keyless.add_q(models.Q(cdms_pk__isnull=True))
    rows = keyless.get_count(using)
    filter = None if node is odata.TRUE else odata.render(node)
    decided(model, "count", filter=filter, records=0, counted=counted, local_only=rows)
    return counted + rows


def countable(query: Query) -> bool:
    """Whether Django counts one row per record the query's own conditions select: one
    table (no join, which may repeat rows or read other rows), no slice, no ``distinct``,
    grouping, annotation, extra or combined query; a model whose reads are not backed by the
    change feed (those answer locally), outside a ``migrator.atomic()`` block (whose writes
    the remote has not had yet)."""
    return (
        own_rows_only(query)
        and not query.combinator
        and not query.distinct
        and not query.annotations
        and not query.extra
        and not query.model._meta.parents
        and not reads_changes(query.model)
        and local.block() is None
    )
