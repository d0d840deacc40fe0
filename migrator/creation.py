"""One creator per lookup: ``get_or_create()`` (and so ``update_or_create()``) of a synced
model takes a lock on its lookup in the local database, held until the local transaction
ends, before it reads. Two processes asking for the same lookup at once then run one after
the other: the first creates the record; the second's read, made once the first has
committed, finds it (remotely, then locally through the loader) and answers with the
winner's row. The CRM has no lock to offer; the processes share the local database.

PostgreSQL: a transaction-level advisory lock on a hash of the model and the lookup.
SQLite locks the whole database for writing: a write that changes nothing takes that lock
(a transaction begun ``IMMEDIATE``, as ``core.settings`` configures, holds it already).
Other databases: no lock (the race is then the one Django's own ``get_or_create`` has)."""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connections, models

from .state import SyncState


def lock(model: type[models.Model], lookup: dict[str, Any], using: str) -> None:
    """Take the lock of ``lookup`` on ``model`` for the rest of the local transaction."""
    connection = connections[using]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(model, lookup)])
        elif connection.vendor == "sqlite":
            table = connection.ops.quote_name(SyncState._meta.db_table)
            cursor.execute(f"UPDATE {table} SET id = id WHERE 0 = 1")


def _lock_id(model: type[models.Model], lookup: dict[str, Any]) -> int:
    """A signed 64-bit id for the lookup (what ``pg_advisory_xact_lock`` takes)."""
    text = repr((model._meta.label, sorted((k, _canonical(v)) for k, v in lookup.items())))
    return int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True
    )


def _canonical(value: Any) -> Any:
    """A lookup value as text that names it: a model instance by its model and key."""
    if isinstance(value, models.Model):
        return (value._meta.label, value.pk)
    return repr(value)
