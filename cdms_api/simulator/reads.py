"""Collection reads: filter, order, keyset paging, ``$count``, ``$expand``, change tracking."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from .annotations import Annotator, navigation_of
from .errors import CHANGE_TRACKING_NOT_ENABLED, EXPIRED_VERSION_STAMP, DataverseError, bad_query
from .filters import compile_filter
from .options import (
    MAX_PAGE_SIZE,
    Expand,
    Preferences,
    ReadOptions,
    encode_token,
)
from .schema import EntitySet, Property, Schema
from .store import Store

COUNT_LIMIT = 5000


def etag(row: Any) -> str:
    return f'W/"{row["versionnumber"]}"'


def represent(
    entity_set: EntitySet,
    rows: Sequence[Any],
    select: Sequence[Property] | None,
    expanded: Sequence[dict[str, Any]] | None = None,
    annotations: Sequence[dict[str, dict[str, Any]]] | None = None,
) -> list[dict[str, Any]]:
    """Rows as Dataverse writes them: etag, the selected properties (each after its
    annotations), the key, expansions. ``expanded`` and ``annotations`` go with ``rows``, one
    each per row. Which properties to write, and which of them need converting, is worked out
    once for all the rows: a page of 5,000 records is mostly this loop."""
    properties = [
        (p.name, p.column, None if p.type.writes_stored_value else p.type.to_json, p)
        for p in select or entity_set.properties.values()
    ]
    key = entity_set.key_property
    records = []
    for i, row in enumerate(rows):
        notes = annotations[i] if annotations else None
        record: dict[str, Any] = {"@odata.etag": etag(row)}
        for name, column, to_json, prop in properties:
            if notes and name in notes:
                record.update(notes[name])
            value = row[column]
            record[name] = value if to_json is None else to_json(prop, value)
        record[key.name] = row[key.column]
        if expanded and expanded[i]:
            record.update(expanded[i])
        records.append(record)
    return records


def context_url(
    base: str,
    entity_set: EntitySet,
    select: Sequence[Property] | None,
    expand: Sequence[Expand] = (),
) -> str:
    parts = [p.name for p in select or ()]
    for item in expand:
        inner = ",".join(p.name for p in item.select or ())
        parts.append(f"{item.navigation.name}({inner})")
    return f"{base}$metadata#{entity_set.name}" + (f"({','.join(parts)})" if parts else "")


def expansions(store: Store, rows: Sequence[Any], expand: Sequence[Expand]) -> list[dict]:
    """The expanded lookups of every row, read with one query per navigation property. A
    polymorphic lookup expands through the navigation property of the record's type only."""
    result: list[dict] = [{} for _ in rows]
    for item in expand:
        lookup = item.navigation.lookup
        through = [navigation_of(lookup, row) is item.navigation for row in rows]
        keys = {row[lookup.column] for row, ok in zip(rows, through, strict=True) if ok}
        target_key = item.target.key_property.column
        targets = store.rows_in(item.target, target_key, keys)
        found = {
            target[target_key]: record
            for target, record in zip(
                targets, represent(item.target, targets, item.select), strict=True
            )
        }
        for row, ok, extra in zip(rows, through, result, strict=True):
            extra[item.navigation.name] = found.get(row[lookup.column]) if ok else None
    return result


def sort_keys(options: ReadOptions) -> list[tuple[Property, bool]]:
    key = options.entity_set.key_property
    keys = list(options.orderby)
    if all(prop is not key for prop, _ in keys):
        keys.append((key, False))
    return keys


def after_clause(keys: list[tuple[Property, bool]], values: list[Any]) -> tuple[str, list]:
    """Rows strictly after ``values`` in the order of ``keys``, nulls first as in SQL Server."""
    alternatives, params = [], []
    for i, (prop, descending) in enumerate(keys):
        terms, term_params = [], []
        for earlier, value in zip(keys[:i], values[:i], strict=True):
            terms.append(f't0."{earlier[0].column}" IS ?')
            term_params.append(value)
        column, value = f't0."{prop.column}"', values[i]
        if value is None:
            terms.append("0" if descending else f"{column} IS NOT NULL")
        else:
            terms.append(f"({column} < ? OR {column} IS NULL)" if descending else f"{column} > ?")
            term_params.append(value)
        alternatives.append("(" + " AND ".join(terms) + ")")
        params.extend(term_params)
    return "(" + " OR ".join(alternatives) + ")", params


def check_token(token: dict[str, Any], keys: list[tuple[Property, bool]]) -> None:
    """A ``$skiptoken`` must hold one plain value per sort key (and maybe a version): the
    token of another query, or one made up, is a bad request rather than a server error."""
    after, version = token["after"], token.get("version")
    if (
        len(after) != len(keys)
        or not all(value is None or _plain(value) for value in after)
        or (version is not None and not (_plain(version) and isinstance(version, int)))
    ):
        raise bad_query("The $skiptoken value is not valid for this query.")


def _plain(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or -(2**63) <= value < 2**63


class CollectionRead:
    """One page of ``GET <entity set>``."""

    def __init__(
        self,
        schema: Schema,
        store: Store,
        options: ReadOptions,
        prefs: Preferences,
        base_url: str,
        args: dict[str, str],
    ):
        self.schema, self.store, self.options, self.prefs = schema, store, options, prefs
        self.base_url, self.args = base_url, args

    def where(self) -> tuple[list[str], list[Any]]:
        if not self.options.filter:
            return [], []
        sql, params = compile_filter(
            self.schema, self.options.entity_set, self.options.filter, self.options.aliases
        )
        return [sql], params

    def page_size(self) -> int | None:
        if self.prefs.max_page_size:
            return min(self.prefs.max_page_size, MAX_PAGE_SIZE)
        if self.options.top is not None:
            return None
        return MAX_PAGE_SIZE

    def run(self) -> tuple[dict[str, Any], dict[str, str]]:
        options, entity_set = self.options, self.options.entity_set
        if options.deltatoken is not None:
            self.check_feed(options.deltatoken)
            return self.delta()
        clauses, params = self.where()
        keys = sort_keys(options)
        page_size = self.page_size()
        limit = page_size + 1 if page_size else options.top
        token = options.skiptoken or {}
        version = token.get("version")
        if version is not None or self.prefs.track_changes:
            self.check_feed(version)
        if self.prefs.track_changes and version is None:
            # taken before the rows are read: a write landing in between is in the next delta
            version = self.store.current_version()
        tracking = version is not None
        paged_clauses, paged_params = list(clauses), list(params)
        if token:
            check_token(token, keys)
            clause, extra = after_clause(keys, token["after"])
            paged_clauses.append(clause)
            paged_params.extend(extra)
        order = ", ".join(f't0."{p.column}"' + (" DESC" if d else "") for p, d in keys)
        where = f" WHERE {' AND '.join(paged_clauses)}" if paged_clauses else ""
        rows = self.store.query(
            f'SELECT t0.* FROM "{entity_set.name}" t0{where} ORDER BY {order} LIMIT ?',
            [*paged_params, limit],
        )
        body: dict[str, Any] = {
            "@odata.context": context_url(self.base_url, entity_set, options.select, options.expand)
        }
        if options.count:
            self.add_count(body, clauses, params)
        else:
            self.add_no_count(body)
        more = page_size is not None and len(rows) > page_size
        rows = rows[:page_size] if page_size else rows
        extra = expansions(self.store, rows, options.expand)
        notes = Annotator(self.schema, self.store, self.prefs).annotate(
            entity_set, rows, options.select
        )
        body["value"] = represent(entity_set, rows, options.select, extra, notes)
        if more:
            payload = {"after": [rows[-1][p.column] for p, _ in keys]}
            if tracking:
                payload["version"] = version
            body["@odata.nextLink"] = self.link(**{"$skiptoken": encode_token(payload)})
        elif tracking:
            body["@odata.deltaLink"] = self.link(**{"$deltatoken": str(version)})
        return body, self.applied(tracking)

    def applied(self, tracking: bool) -> dict[str, str]:
        """The ``Preference-Applied`` header of the answer, if any preference was."""
        applied = [
            f"odata.maxpagesize={self.prefs.max_page_size}" if self.prefs.max_page_size else "",
            f'odata.include-annotations="{self.prefs.annotations}"'
            if self.prefs.annotations
            else "",
            "odata.track-changes" if tracking else "",
        ]
        return {"Preference-Applied": ", ".join(filter(None, applied))} if any(applied) else {}

    def check_feed(self, version: int | None) -> None:
        """A change-tracking read needs change tracking on the table, and a version (of a delta
        link, or of the paging link of a change-tracking read) the change log still holds."""
        entity_set = self.options.entity_set
        if not self.store.tracks_changes(entity_set):
            raise DataverseError(
                400,
                CHANGE_TRACKING_NOT_ENABLED,
                f"Entity {entity_set.entity_type} isn't enabled for change tracking.",
            )
        if version is not None and version < self.store.change_horizon(entity_set):
            raise DataverseError(
                400,
                EXPIRED_VERSION_STAMP,
                "Version stamp associated with the client has expired. Please perform a full sync.",
            )

    def add_count(self, body: dict[str, Any], clauses: list[str], params: list[Any]) -> None:
        entity_set = self.options.entity_set
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self.store.query(
            f'SELECT COUNT(*) FROM (SELECT 1 FROM "{entity_set.name}" t0{where} LIMIT ?)',
            [*params, COUNT_LIMIT + 1],
        )[0][0]
        body["@odata.count"] = min(total, COUNT_LIMIT)
        if self.prefs.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcount"):
            body["@Microsoft.Dynamics.CRM.totalrecordcount"] = min(total, COUNT_LIMIT)
        if self.prefs.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"):
            body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = total > COUNT_LIMIT

    def add_no_count(self, body: dict[str, Any]) -> None:
        """Without ``$count=true``, the count annotations asked for are there, saying that
        nothing was counted: ``totalrecordcount`` is -1, as Dataverse documents."""
        if self.prefs.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcount"):
            body["@Microsoft.Dynamics.CRM.totalrecordcount"] = -1
        if self.prefs.wants_annotation("Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"):
            body["@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded"] = False

    def link(self, **replacements: str) -> str:
        args = {k: v for k, v in self.args.items() if k not in ("$skiptoken", "$deltatoken")}
        args.update(replacements)
        return f"{self.base_url}{self.options.entity_set.name}?{urlencode(args, safe='$,()')}"

    def delta(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The changes since the delta token, oldest first: rows created or changed, keys
        deleted, paged like any read (``odata.maxpagesize``, at most 5,000 a page; the SDK's
        ``RetrieveEntityChanges`` has ``MoreRecords`` for this). Every page covers the versions
        up to the one current when the first page was read: a change landing meanwhile is in
        the next delta. The last page carries the new delta link."""
        options, entity_set = self.options, self.options.entity_set
        since = options.deltatoken
        if options.skiptoken is None:
            after, until = since, self.store.current_version()
        else:
            after, until = check_delta_token(options.skiptoken, since, self.store.current_version())
        size = self.page_size()
        rows = self.store.query(
            f'SELECT * FROM "{entity_set.name}" WHERE versionnumber > ? AND versionnumber <= ? '
            "ORDER BY versionnumber LIMIT ?",
            (after, until, size + 1),
        )
        gone = self.store.deleted_between(entity_set, after, until, limit=size + 1)
        entries = sorted(  # (version, changed row or None, deleted key or None)
            [(row["versionnumber"], row, None) for row in rows]
            + [(version, None, key) for key, version in gone],
            key=lambda entry: entry[0],
        )
        more = len(entries) > size
        entries = entries[:size]
        changed = [row for _, row, _ in entries if row is not None]
        notes = Annotator(self.schema, self.store, self.prefs).annotate(
            entity_set, changed, options.select
        )
        records = iter(represent(entity_set, changed, options.select, None, notes))
        gone_context = f"{self.base_url}$metadata#{entity_set.name}/$deletedEntity"
        value = [
            next(records)
            if row is not None
            else {"@odata.context": gone_context, "id": key, "reason": "deleted"}
            for _, row, key in entries
        ]
        body: dict[str, Any] = {
            "@odata.context": context_url(self.base_url, entity_set, options.select) + "/$delta"
        }
        if more:
            token = encode_token({"after": [entries[-1][0]], "version": until})
            body["@odata.nextLink"] = self.link(**{"$deltatoken": str(since), "$skiptoken": token})
        else:
            body["@odata.deltaLink"] = self.link(**{"$deltatoken": str(until)})
        body["value"] = value
        return body, self.applied(tracking=True)


def check_delta_token(token: dict[str, Any], since: int, current: int) -> tuple[int, int]:
    """The versions a later page of a delta read covers, from its ``$skiptoken``: after the
    last one of the page before, up to the one the read began at. A token made up, or out of
    the range of the delta token beside it, is a bad request."""
    after, until = token["after"], token.get("version")
    if not (
        len(after) == 1
        and all(isinstance(v, int) and not isinstance(v, bool) for v in (after[0], until))
        and since <= after[0] <= until <= current
    ):
        raise bad_query("The $skiptoken value is not valid for this query.")
    return after[0], until
