"""Rows in SQLite: one table per entity set, plus a change log that versions every write.

Every write takes the next number of the change log as the row's ``versionnumber``; the weak
ETag and the delta tokens of change tracking are both that number. Change tracking can be turned
off per entity set (the schema's ``change_tracking``, or the control API), and an entity set's
change log can be expired, as Dataverse forgets changes past its retention: links issued before
then are refused. One connection serves every
thread, behind a lock; requests run inside ``transaction()``, which nests as savepoints so that
a ``$batch`` changeset is atomic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .schema import EntitySet, Schema
from .types import collate_decimal, collate_text, dataverse_like

IN_CHUNK = 500  # bound parameters per IN list


class Store:
    def __init__(self, schema: Schema, path: str = ":memory:"):
        self.schema = schema
        self.lock = threading.RLock()
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.create_collation("DATAVERSE", collate_text)
        self.db.create_collation("DECIMAL", collate_decimal)
        self.db.create_function("dataverse_like", 2, dataverse_like, deterministic=True)
        self.db.execute(
            "PRAGMA journal_mode=MEMORY" if path == ":memory:" else "PRAGMA journal_mode=WAL"
        )
        self._depth = 0
        self._tracking: dict[str, bool] = {}  # the control API's word over the schema's
        self._create_tables()

    def _create_tables(self) -> None:
        with self.transaction():
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS _changes (version INTEGER PRIMARY KEY AUTOINCREMENT,"
                " entity_set TEXT NOT NULL, key TEXT NOT NULL, deleted INTEGER NOT NULL)"
            )
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS _horizons (entity_set TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL)"
            )
            for entity_set in self.schema.entity_sets.values():
                columns = ", ".join(
                    [
                        f'"{p.column}" {p.type.column}'
                        + (" PRIMARY KEY" if p.name == entity_set.key else "")
                        for p in entity_set.properties.values()
                    ]
                    + [f'"{p.type_column}" TEXT' for p in entity_set.lookups if p.polymorphic]
                )
                self.db.execute(f'CREATE TABLE IF NOT EXISTS "{entity_set.name}" ({columns})')
                # a deleted record's links are cleared by lookup value, a delta link reads the
                # rows changed since its version: no scan of the table for either
                for column in [*(lookup.column for lookup in entity_set.lookups), "versionnumber"]:
                    self.db.execute(
                        f'CREATE INDEX IF NOT EXISTS "{entity_set.name}_{column}" '
                        f'ON "{entity_set.name}" ("{column}")'
                    )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing; nested calls are savepoints of the outermost transaction."""
        with self.lock:
            name = f"sp{self._depth}"
            self.db.execute("BEGIN" if self._depth == 0 else f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self.db.execute("ROLLBACK" if self._depth == 0 else f"ROLLBACK TO {name}")
                if self._depth:
                    self.db.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            self.db.execute("COMMIT" if self._depth == 0 else f"RELEASE {name}")

    def query(self, sql: str, params: list[Any] | tuple = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    def get(self, entity_set: EntitySet, key: str) -> sqlite3.Row | None:
        rows = self.find(entity_set, {entity_set.key_property.column: key})
        return rows[0] if rows else None

    def find(self, entity_set: EntitySet, values: dict[str, Any]) -> list[sqlite3.Row]:
        """Rows whose columns equal ``values`` (compared under each column's collation)."""
        where = " AND ".join(f'"{column}" = ?' for column in values)
        return self.query(f'SELECT * FROM "{entity_set.name}" WHERE {where}', list(values.values()))

    def rows_in(self, entity_set: EntitySet, column: str, values: Iterable[Any]) -> list[Any]:
        """Rows whose ``column`` is one of ``values``, read in chunks of bound parameters."""
        ordered, rows = sorted(set(values) - {None}), []
        for start in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[start : start + IN_CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows += self.query(
                f'SELECT * FROM "{entity_set.name}" WHERE "{column}" IN ({marks})', chunk
            )
        return rows

    def _next_version(self, entity_set: EntitySet, key: str, deleted: bool) -> int:
        cursor = self.db.execute(
            "INSERT INTO _changes (entity_set, key, deleted) VALUES (?, ?, ?)",
            (entity_set.name, key, int(deleted)),
        )
        return cursor.lastrowid

    def insert(self, entity_set: EntitySet, key: str, values: dict[str, Any]) -> None:
        """``values`` maps column names to stored values; the key is added here."""
        with self.transaction():
            row = {**values, entity_set.key_property.column: key}
            row["versionnumber"] = self._next_version(entity_set, key, deleted=False)
            names = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            self.db.execute(
                f'INSERT INTO "{entity_set.name}" ({names}) VALUES ({marks})', list(row.values())
            )

    def update(self, entity_set: EntitySet, key: str, values: dict[str, Any]) -> None:
        with self.transaction():
            row = {**values, "versionnumber": self._next_version(entity_set, key, deleted=False)}
            assignments = ", ".join(f'"{c}" = ?' for c in row)
            self.db.execute(
                f'UPDATE "{entity_set.name}" SET {assignments} '
                f'WHERE "{entity_set.key_property.column}" = ?',
                [*row.values(), key],
            )

    def delete(self, entity_set: EntitySet, key: str) -> None:
        with self.transaction():
            self._next_version(entity_set, key, deleted=True)
            self.db.execute(
                f'DELETE FROM "{entity_set.name}" WHERE "{entity_set.key_property.column}" = ?',
                (key,),
            )

    def current_version(self) -> int:
        rows = self.query("SELECT COALESCE(MAX(version), 0) FROM _changes")
        return rows[0][0]

    def deleted_between(
        self, entity_set: EntitySet, after: int, until: int, limit: int
    ) -> list[tuple[str, int]]:
        """Keys deleted in versions ``after`` < v <= ``until`` that do not exist now, each
        with its last such version, in the order of those versions: the first ``limit``."""
        rows = self.query(
            "SELECT c.key, MAX(c.version) AS last FROM _changes c WHERE c.entity_set = ?"
            " AND c.deleted = 1 AND c.version > ? AND c.version <= ? AND NOT EXISTS (SELECT 1"
            f' FROM "{entity_set.name}" t WHERE t."{entity_set.key_property.column}" = c.key)'
            " GROUP BY c.key ORDER BY last LIMIT ?",
            (entity_set.name, after, until, limit),
        )
        return [(row[0], row[1]) for row in rows]

    def clear(self) -> None:
        with self.transaction():
            for entity_set in self.schema.entity_sets.values():
                self.db.execute(f'DELETE FROM "{entity_set.name}"')
            self.db.execute("DELETE FROM _changes")
            self.db.execute("DELETE FROM _horizons")
            self._tracking.clear()

    # the change feed -------------------------------------------------------------------------
    def tracks_changes(self, entity_set: EntitySet) -> bool:
        return self._tracking.get(entity_set.name, entity_set.change_tracking)

    def set_change_tracking(self, entity_set: EntitySet, enabled: bool) -> None:
        with self.lock:
            self._tracking[entity_set.name] = enabled

    def expire_changes(self, entity_set: EntitySet) -> None:
        """Forget the entity set's change log up to now: every version issued so far (in a
        delta link, or in the paging link of a change-tracking read) is expired from now on."""
        with self.transaction():
            horizon = self._next_version(entity_set, "", deleted=False)  # a version of its own
            self.db.execute(
                "DELETE FROM _changes WHERE entity_set = ? AND version < ?",
                (entity_set.name, horizon),
            )
            self.db.execute(
                "INSERT OR REPLACE INTO _horizons (entity_set, version) VALUES (?, ?)",
                (entity_set.name, horizon),
            )

    def change_horizon(self, entity_set: EntitySet) -> int:
        """The oldest version the entity set's change log still answers from."""
        rows = self.query("SELECT version FROM _horizons WHERE entity_set = ?", (entity_set.name,))
        return rows[0][0] if rows else 0
