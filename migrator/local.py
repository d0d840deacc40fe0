"""Local-only access to synced models: what the sync engine, the loader and the writes use to
read and write the local tables without syncing them again."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.db import models
from django.db.models.sql.query import Query

_local_only = contextvars.ContextVar("cdms_local_only", default=False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Within the block, every read of a synced model answers from the local tables: the
    related rows Django's deletion collector reads, and what a ``skip_cdms()`` queryset reads
    through related managers (``prefetch_related``)."""
    token = _local_only.set(True)
    try:
        yield
    finally:
        _local_only.reset(token)


def syncs(query: Query) -> bool:
    """Whether running ``query`` syncs first: a query of a synced model, not ``skip_cdms()``,
    outside ``local_only()``."""
    return getattr(query, "cdms_sync", False) and not _local_only.get()


def rows(model: type[models.Model]) -> models.QuerySet:
    """The model's local table as a plain Django queryset: never synced, never filtered."""
    return models.QuerySet(model)
