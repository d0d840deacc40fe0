"""``CDMSQuery``: ``django.db.models.sql.query.Query`` with the one sync point of the project.

Every Django read ends in the SQL compiler, whichever method, manager, related descriptor,
prefetch or async variant starts it: ``execute_sql`` for rows, ``has_results`` for
``exists()``, and ``get_aggregation`` for ``count()`` and ``aggregate()`` (which may compile
the query as a subquery of another and never execute it on its own); ``count()`` of a query
the remote counts exactly asks the remote alone (``get_count``). So the query carries
the sync flag, and its select compiler brings the rows the query can return up to date with
the remote just before it runs. Writes (``UpdateQuery``, ``DeleteQuery``, ``InsertQuery``) are
other classes and never sync.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.constants import GET_ITERATOR_CHUNK_SIZE as CHUNK
from django.db.models.sql.constants import MULTI
from django.db.models.sql.query import Query

from .counting import remote_count
from .local import syncs
from .sync import by_local_pk, refresh, rows_still_current, version_columns


class CDMSQuery(Query):
    """A query of a synced model. ``cdms_sync`` False makes it purely local (``skip_cdms()``);
    clones keep the flag."""

    cdms_sync = True
    cdms_exists = False  # the query of exists(), which one matching row answers
    cdms_aggregate = False  # the query of count() or aggregate(), whose rows are not returned

    def get_compiler(self, using=None, connection=None, elide_empty=True) -> SQLCompiler:
        compiler = super().get_compiler(using, connection, elide_empty)
        if self.compiler == "SQLCompiler":
            base = type(compiler)
            if base not in _SYNCING:
                _SYNCING[base] = _syncing_compiler(base)
            compiler.__class__ = _SYNCING[base]
        return compiler

    def get_count(self, using: str) -> int:
        """``count()``: one remote ``$count`` when the remote filter is exact
        (``counting.remote_count``); otherwise the sync, then Django's count."""
        if syncs(self):
            counted = remote_count(self, using)
            if counted is not None:
                return counted
        return super().get_count(using)

    def get_aggregation(self, using: str, aggregate_exprs: dict[str, Any]) -> dict[str, Any]:
        """``count()`` and ``aggregate()``: sync what the query could count, then aggregate
        locally (the query may run as a subquery of Django's ``AggregateQuery``)."""
        if syncs(self) and aggregate_exprs:
            self.cdms_aggregate = True
            refresh(self)
            self.cdms_sync = False  # a throwaway clone: the aggregation itself runs locally
        return super().get_aggregation(using, aggregate_exprs)

    def has_results(self, using: str) -> bool:
        """``exists()``: its query is answered once a record the remote read returned is
        among the rows it selects (``sync.refresh``)."""
        query = self.exists()
        query.cdms_exists = True
        return query.get_compiler(using=using).has_results()


_SYNCING: dict[type[SQLCompiler], type[SQLCompiler]] = {}


def _syncing_compiler(base: type[SQLCompiler]) -> type[SQLCompiler]:
    """The database backend's select compiler, syncing before it executes; ``get(pk=...)``
    runs first and has its row checked after (``sync.rows_still_current``) when its columns
    show the row's version."""

    def execute_sql(
        self, result_type: str = MULTI, chunked_fetch: bool = False, chunk_size: int = CHUNK
    ) -> Any:
        query = self.query
        if syncs(query) and not query.explain_info:
            version = _version_first(self, result_type)
            if version is not None:
                rows = list(chain.from_iterable(base.execute_sql(self, MULTI, False, chunk_size)))
                current = rows_still_current(query, version, rows)
                if current:
                    return [rows]
                if current is None:
                    refresh(query)
            else:
                refresh(query)
        return base.execute_sql(self, result_type, chunked_fetch, chunk_size)

    return type(f"Syncing{base.__name__}", (base,), {"execute_sql": execute_sql})


def _version_first(compiler: SQLCompiler, result_type: str) -> tuple[int, int] | None:
    """For ``get(pk=...)`` whose columns show the row's key and ETag, where they are: its
    local query runs first, then the keyed GET checks its row. None for any other query,
    which is synced first."""
    if result_type != MULTI or by_local_pk(compiler.query) is None:
        return None
    return version_columns(compiler)
