"""Local-only access to synced models: what the sync engine, the loader and the writes use to
read and write the local tables without syncing them again; and what the open
``migrator.atomic()`` block has written locally and not yet sent."""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from django.db import connections, models, router
from django.db.models.sql.query import Query

_local_only = contextvars.ContextVar("cdms_local_only", default=False)
_writing_locally: contextvars.ContextVar[frozenset[type]] = contextvars.ContextVar(
    "cdms_writing_locally", default=frozenset()
)


class Block(Protocol):
    """The remote writes of an open ``migrator.atomic()`` block (``blocks.Block``)."""

    def add(self, write: Any) -> None: ...

    def reread(self, model: type[models.Model], keys: set[str]) -> None: ...

    def pending(self, model: type[models.Model]) -> dict[str, str]: ...


_block: contextvars.ContextVar[Block | None] = contextvars.ContextVar("cdms_block", default=None)


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


@contextlib.contextmanager
def writing_locally(model: type[models.Model]) -> Iterator[None]:
    """Within the block, saves and deletes of ``model``'s instances write locally only, as
    ``save(skip_cdms=True)`` does: the writes a ``skip_cdms()`` queryset's methods make
    (``get_or_create``, ``update_or_create``, ``create``), Django's own code running them."""
    token = _writing_locally.set(_writing_locally.get() | {model})
    try:
        yield
    finally:
        _writing_locally.reset(token)


def writes_locally(model: type[models.Model]) -> bool:
    return model in _writing_locally.get()


def rows(model: type[models.Model]) -> models.QuerySet:
    """The model's local table as a plain Django queryset: never synced, never filtered."""
    return models.QuerySet(model)


def block() -> Block | None:
    """The open ``migrator.atomic()`` block, None outside one."""
    return _block.get()


def open_block(opened: Block) -> contextvars.Token:
    return _block.set(opened)


def close_block(token: contextvars.Token) -> None:
    _block.reset(token)


def pending(model: type[models.Model]) -> dict[str, str]:
    """The remote keys of ``model``'s records that the open ``migrator.atomic()`` block
    creates, updates or deletes and has not sent yet, each with what it does to them
    (``"create"``, ``"update"``, ``"delete"``). A read in the block leaves them as the block
    made them locally: not rechecked (their records are not there, or not changed yet), not
    brought back (a deleted one)."""
    opened = _block.get()
    return {} if opened is None else opened.pending(model)


def stored_version(model: type[models.Model], pk: Any) -> tuple[str, str] | None:
    """The remote key and ETag of the row ``pk``; None when there is no such row, or it was
    never synced. One statement through the connection's cursor: a queryset costs many times
    what the database takes to answer it."""
    connection = connections[router.db_for_read(model)]
    meta, quote = model._meta, connection.ops.quote_name
    columns = (quote(meta.get_field(name).column) for name in ("cdms_pk", "cdms_etag"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {quote(meta.db_table)} "
            f"WHERE {quote(meta.pk.column)} = %s",
            [meta.pk.get_db_prep_value(pk, connection)],
        )
        row = cursor.fetchone()
    if row is None or row[0] is None or not row[1]:
        return None
    return str(uuid.UUID(str(row[0]))), row[1]
