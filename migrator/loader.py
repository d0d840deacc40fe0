"""The loader: remote records written into the local table, one bulk write per page.

Reads (the sync engine) and writes (the record a create or an update returns) both store
records here, so that a local row always holds what the CRM stored, converted once, the same
way. Records whose ETag is the one stored are skipped; the related rows their lookups point
at are written first (read by key when missing locally, or taken from ``$expand``)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from dateutil.parser import isoparse
from django.db import connections, models, router, transaction
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import MalformedResponse

from . import local, remote
from .converters import converter_for, parse_instant
from .mapping import FieldMap, Mapping
from .metrics import count_loaded
from .tombstones import buried, version_of
from .upsert import insert_new, returns_inserted_keys, stored_etags, upsert

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator")
FOREIGN_KEY_DEPTH = 3
CANONICAL_KEY = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class RemoteNullWarning(UserWarning):
    """A record holds null in a property mapped to a field that cannot hold it (``null=False``
    and no default): the record is not stored locally. ``manage.py check`` warns of such
    fields (``migrator.W001``)."""


@dataclass
class Stored:
    """The ETags of rows a read is expected to return, read before it (remote key -> ETag):
    ``load`` compares the records' ETags with them rather than read them again, and notes
    whether it wrote anything; the read notes whether it deleted rows (``deleted``), which
    can change other rows (``on_delete``)."""

    etags: dict[str, str]
    wrote: bool = False
    deleted: bool = False


_noted: contextvars.ContextVar[dict[type, set[str]] | None] = contextvars.ContextVar(
    "cdms_noted_writes", default=None
)


@contextlib.contextmanager
def noting_writes() -> Iterator[dict[type, set[str]]]:
    """Within the block, the remote keys of the rows the loader writes, by model (a block
    within it notes them for both)."""
    outer, written = _noted.get(), {}
    token = _noted.set(written)
    try:
        yield written
    finally:
        _noted.reset(token)
        for model, keys in written.items() if outer is not None else ():
            outer.setdefault(model, set()).update(keys)


def load(
    model: type[CDMSModel],
    records: list[dict],
    depth: int = 0,
    refresh: dict | None = None,
    stored: Stored | None = None,
) -> set[str]:
    """Write a page of remote records locally in one bulk write: create the new, update the
    changed, skip those whose ETag is the one stored. Returns the keys of the records (all
    present remotely, whether or not they needed a write). The related rows of the lookups
    named in ``refresh`` (a tree, see ``translator.forward_joins``) are read again too, not
    only when missing locally. Records the open ``migrator.atomic()`` block deletes are left
    out: their rows are gone locally, and their remote delete is on its way."""
    deleting = {key for key, kind in local.pending(model).items() if kind == "delete"}
    with answered(model):
        page = Page.of(model, records)
        kept = page.only([key for key in page.keyed if key not in deleting]) if deleting else page
        if _write(model, kept, depth, refresh, stored.etags if stored else {}) and stored:
            stored.wrote = True
    return set(page.keyed)


def store(model: type[CDMSModel], records: list[dict]) -> dict[str, dict[str, Any]]:
    """Store the records writes returned (one bulk write, as ``load``) and give each one's
    local values, by key, for the instances that were written."""
    with answered(model):
        return _store(model, records)


def _store(model: type[CDMSModel], records: list[dict]) -> dict[str, dict[str, Any]]:
    page = Page.of(model, records)
    written = _write(model, page, 0, {}, {})
    rest = page.only([key for key in page.keyed if key not in written])
    if rest.keyed:  # already stored, by a read that came first: the values go to the instances
        values = values_of_each(model.cdms, rest, _related_ids(model, rest, 0, {}))
        written.update((key, row) for key, (row, _) in zip(rest.keyed, values, strict=True))
    return written


@dataclass
class Page:
    """Records by their key, and the key each one's lookups hold (by the lookup field's name,
    in the records' order), each canonicalised once."""

    keyed: dict[str, dict]
    lookups: dict[str, list[str | None]]

    @classmethod
    def of(cls, model: type[CDMSModel], records: list[dict]) -> Page:
        key = model.cdms.key
        keyed = {key_of(record[key]): record for record in records}
        lookups = {
            fm.field.name: [key_of(k) if (k := fm.lookup_key(r)) else None for r in keyed.values()]
            for fm in model.cdms.fields
            if fm.is_lookup
        }
        return cls(keyed, lookups)

    def only(self, keys: list[str]) -> Page:
        """The page of the records of ``keys``."""
        position = {key: i for i, key in enumerate(self.keyed)}
        return Page(
            {key: self.keyed[key] for key in keys},
            {name: [held[position[key]] for key in keys] for name, held in self.lookups.items()},
        )


def _write(
    model: type[CDMSModel],
    page: Page,
    depth: int,
    refresh: dict | None,
    known: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """``load``'s bulk write; returns the local values written, by key. The ETags stored are
    compared without building the rows; those ``known`` are not read again."""
    mapping = model.cdms
    related = _related_ids(model, page, depth, refresh or {})  # may write some records first
    etags = {key: known[key] for key in page.keyed if key in known}
    if unknown := [key for key in page.keyed if key not in known]:
        etags.update(stored_etags(model, unknown))
    if not (stale := _stale(page, etags)):
        return {}
    written, using = {}, router.db_for_write(model)
    with transaction.atomic(using=using):
        # Another process may have written the same records meanwhile. Rows are locked in one
        # order, their primary key's, by every page writer (here and ``inbound.write_page``),
        # and new ones inserted in key order: two writers of overlapping pages wait, never
        # deadlock. The statement that locks the rows reads their ETags again.
        # A page never writes a record older than its row holds: a row missing, or not yet
        # committed, when ``inbound`` compared its page with the rows was not compared there.
        # Without row locks (SQLite) the transaction holds the database's own, and none can
        # be written meanwhile. The rows stored are read again; those of new records are
        # inserted unless they appeared since (``_store_locked``), or, where the database
        # cannot tell which it inserted, read again too.
        returning = returns_inserted_keys(connections[using])
        if compared := [key for key in stale if key in etags] if returning else stale:
            held = _lock(model, compared)
            etags.update((key, etag) for key, (etag, _) in held.items())
            stale = [
                key
                for key in _stale(page.only(stale), etags)
                if key not in held or not older(page.keyed[key], held[key])
            ]
        # A record deleted since the page was read is not brought back (``tombstones``).
        if gone := buried(model, {key: page.keyed[key] for key in stale}):
            stale = [key for key in stale if key not in gone]
        changed = page.only(stale)
        values = values_of_each(mapping, changed, related)
        for (key, record), (row, unheld) in zip(changed.keyed.items(), values, strict=True):
            if unheld:
                _warn_null(mapping, unheld[0], record, "the record is not stored locally")
            else:
                written[key] = row
        if written:
            fields = ["cdms_etag", "cdms_modified", *(fm.field.attname for fm in mapping.fields)]
            now = timezone.now()
            if returning:
                created = _store_locked(model, page, written, set(etags), fields, now)
            else:  # every row of the page was compared under the lock
                upsert(model, dict(sorted(written.items())), fields, now)
                created = {key for key in written if key not in etags}
            _link_within(model, page, written, now)
            if (noted := _noted.get()) is not None:
                noted.setdefault(model, set()).update(written)
            transaction.on_commit(
                partial(count_loaded, model, len(created), len(written) - len(created))
            )
    return written


def _store_locked(
    model: type[CDMSModel],
    page: Page,
    written: dict[str, dict[str, Any]],
    stored: set[str],
    fields: list[str],
    now,
) -> set[str]:
    """Write the rows of ``written`` (the ``stored`` ones locked already) and return the keys
    of those created. A row missing when the page read its rows' ETags may have been inserted
    since, or (PostgreSQL) by a transaction not committed yet, which the page waits for: it
    finds the row committed, and perhaps changed since by a save that stored a newer version
    than the page's. Such rows are not
    overwritten blindly: they are locked and compared as ``inbound`` compares a page's rows
    (an older record is left out of ``written``)."""
    upsert(model, {key: written[key] for key in sorted(written) if key in stored}, fields, now)
    new = {key: written[key] for key in sorted(written) if key not in stored}
    created = insert_new(model, new, now)
    if appeared := new.keys() - created:
        held = _lock(model, appeared)
        newer = {key for key in appeared if key in held and _newer(page.keyed[key], held[key])}
        upsert(model, {key: written[key] for key in sorted(newer)}, fields, now)
        for key in appeared - newer:
            del written[key]
    return created


def _lock(model: type[CDMSModel], keys) -> dict[str, tuple[str, Any]]:
    """Lock the rows of ``keys``, in primary key order (every page writer's), and read the
    ETag each holds, in one raw statement; and ``modifiedon`` where the ETag has no version
    to compare (``older``)."""
    etags = stored_etags(model, sorted(keys), lock=True)
    unversioned = [key for key, etag in etags.items() if version_of(etag) is None]
    rows = local.rows(model).filter(cdms_pk__in=unversioned)
    modified = {str(k): m for k, m in rows.values_list("cdms_pk", "cdms_modified")}
    return {key: (etag, modified.get(key)) for key, etag in etags.items()}


def _newer(record: dict[str, Any], row: tuple[str, Any]) -> bool:
    """Whether the record is another version than the row's, and not an older one."""
    return record.get("@odata.etag") != row[0] and not older(record, row)


def older(record: dict[str, Any], row: tuple[str, Any] | None) -> bool:
    """Whether the record is an older version than the one its local row (its ETag and
    ``modifiedon``) holds: by the version in the ETags, or, when either has none, by
    ``modifiedon``."""
    if row is None:
        return False
    etag, modified = row
    theirs, mine = version_of(record.get("@odata.etag")), version_of(etag)
    if theirs is not None and mine is not None:
        return theirs < mine
    remote_modified = record.get("modifiedon")
    return bool(modified and remote_modified and isoparse(remote_modified) < modified)


def _stale(page: Page, etags: dict[str, str]) -> list[str]:
    """The keys of the page's records whose ETag is not the one stored."""
    return [
        key
        for key, record in page.keyed.items()
        if key not in etags or etags[key] != record.get("@odata.etag")
    ]


def values_of_each(
    mapping: Mapping, page: Page, related: dict
) -> list[tuple[dict[str, Any], list[FieldMap]]]:
    """The local values of each record of the page, converted a field at a time: bookkeeping
    and mapped fields, lookups as local ids; and the fields that cannot hold what the record
    has (a null where the field is ``null=False`` with no default), left out of its values."""
    records = list(page.keyed.values())
    etags = [record.get("@odata.etag", "") for record in records]
    names = ["cdms_etag", "cdms_modified"]
    columns = [etags, [_modifiedon(record.get("modifiedon")) for record in records]]
    unheld: list[list[FieldMap]] = [[] for _ in records]
    for fm in mapping.fields:
        field = fm.field
        if fm.is_lookup:
            ids, targets = related[field.name], page.lookups[field.name]
            column = [None if target is None else ids.get(target) for target in targets]
            for i, (target, value) in enumerate(zip(targets, column, strict=True)):
                if target is not None and value is None:
                    etags[i] = ""  # a lookup not resolved yet: the next read redoes it
        else:
            to_python, remote = fm.converter.to_python, fm.remote
            column = [to_python(field, record.get(remote)) for record in records]
        if not field.null and any(value is None for value in column):
            column = _held(fm, column, unheld)
        names.append(field.attname)
        columns.append(column)
    rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
    for row, fields in zip(rows, unheld, strict=True):
        for fm in fields:
            del row[fm.field.attname]
    return list(zip(rows, unheld, strict=True))


def _held(fm: FieldMap, column: list, unheld: list[list[FieldMap]]) -> list:
    """A column of a field that cannot hold null: its default for each null, or, when it has
    none, the field noted in ``unheld`` for each record holding null."""
    if fm.field.has_default():
        return [fm.field.get_default() if value is None else value for value in column]
    for fields, value in zip(unheld, column, strict=True):
        if value is None:
            fields.append(fm)
    return column


def stored_only(mapping: Mapping) -> list[odata.Node] | None:
    """The conditions true of exactly the records the loader stores (``_held``): each field
    that cannot hold null and has no default is not null remotely (text reads a null as "").
    None when no filter can tell them: such a lookup (it may point at another table, or at a
    record that cannot be stored) or a converter of one's own (it may read a value as null)."""
    conditions = []
    for fm in mapping.fields:
        field = fm.field
        if field.null or field.has_default():
            continue
        if fm.is_lookup or type(fm.converter) is not type(converter_for(field)):
            return None
        if fm.to_python(None) is None:
            conditions.append(odata.Prop(fm.remote).ne(None))
    return conditions


def record_values(model: type[CDMSModel], record: dict) -> dict[str, Any]:
    """The local values of one record (the answer to a write), its lookups resolved; a field
    that cannot hold the record's null keeps its local value (with a warning)."""
    with answered(model):
        page = Page.of(model, [record])  # an answer without its record's key is malformed
        [(values, unheld)] = values_of_each(model.cdms, page, _related_ids(model, page, 0, {}))
    for fm in unheld:
        _warn_null(model.cdms, fm, record, "the field keeps its local value")
    return values


def _warn_null(mapping: Mapping, fm: FieldMap, record: dict, outcome: str) -> None:
    message = (
        f"{mapping.entity_set}({record.get(mapping.key)}) has null in '{fm.remote}', which "
        f"{mapping.model.__name__}.{fm.field.name} (null=False, no default) cannot hold: "
        f"{outcome}. Give the field null=True or a default (manage.py check: migrator.W001)."
    )
    logger.warning(message)
    warnings.warn(message, RemoteNullWarning, stacklevel=2)


def key_of(value: Any) -> str:
    """A remote key in one spelling (lower case), however the remote wrote it."""
    if isinstance(value, str) and CANONICAL_KEY.fullmatch(value):
        return value  # as the Web API writes keys: nothing to redo
    return str(uuid.UUID(str(value)))


def _modifiedon(value: str | None):
    return parse_instant(value) if value else None


def _link_within(model: type[CDMSModel], page: Page, written: dict[str, dict], now) -> None:
    """Lookups from a model to itself whose target came in the same page (a parent and its
    subsidiary read together): set once both rows exist, in one more bulk write."""
    lookups = [fm for fm in model.cdms.fields if fm.is_lookup and fm.target is model]
    if not lookups:
        return
    position = {key: i for i, key in enumerate(page.keyed)}
    pointing = {}  # key -> {lookup's attname: the key it points at}
    for key in written:
        targets = {
            fm.field.attname: target
            for fm in lookups
            if (target := page.lookups[fm.field.name][position[key]])
        }
        if targets:
            pointing[key] = targets
    ids = _local_ids(model, {target for t in pointing.values() for target in t.values()})
    every_lookup = [fm for fm in model.cdms.fields if fm.is_lookup]
    linked = {}
    for key, targets in pointing.items():
        if not any(ids.get(target) for target in targets.values()):
            continue
        values = {**written[key]}
        for attname, target in targets.items():
            values[attname] = ids.get(target)
        if all(
            values[fm.field.attname] is not None or not page.lookups[fm.field.name][position[key]]
            for fm in every_lookup
        ):
            values["cdms_etag"] = page.keyed[key].get("@odata.etag", "")  # resolved after all
        linked[key] = values
    fields = ["cdms_etag", *(fm.field.attname for fm in lookups)]
    upsert(model, linked, fields, now)


def _local_ids(model: type[models.Model], keys: set[str]) -> dict[str, Any]:
    """Remote key -> local id, for the rows of ``keys`` stored locally."""
    if not keys:
        return {}
    pairs = local.rows(model).filter(cdms_pk__in=keys).values_list("cdms_pk", "pk")
    return {str(key): pk for key, pk in pairs}


def _related_ids(model: type[CDMSModel], page: Page, depth: int, refresh: dict) -> dict[str, dict]:
    """For each lookup, remote key -> local id of the related row. Related records missing
    locally are read in one request per lookup and written first; those in ``refresh`` are
    written first in any case, from the records' ``$expand`` when they came with it."""
    result = {}
    records = list(page.keyed.values())
    for fm in model.cdms.fields:
        if not fm.is_lookup:
            continue
        target = fm.target
        wanted = {key for key in page.lookups[fm.field.name] if key}
        refreshed = fm.field.name in refresh
        if refreshed and all(fm.navigation in r for r in records):
            # they came with the records ($expand): written first, no request of their own
            expanded = [e for r in records if (e := r[fm.navigation])]
            load(target, expanded, depth + 1, refresh[fm.field.name])
            refreshed = False
        known = _local_ids(target, wanted)
        missing = set(wanted) if refreshed else wanted - set(known)
        if missing and target is model:
            missing -= set(page.keyed)  # written in this same page
        if missing and depth < FOREIGN_KEY_DEPTH:
            fetched = list(
                remote.client().iter(
                    target.cdms.entity_set,
                    filter=odata.Prop(target.cdms.key).isin(sorted(missing)),
                    select=target.cdms.select,
                )
            )
            load(target, fetched, depth + 1, refresh.get(fm.field.name))
            known.update(_local_ids(target, missing))
        result[fm.field.name] = known
    return result


@contextlib.contextmanager
def answered(model: type[CDMSModel]) -> Iterator[None]:
    """Records the remote answered that cannot be converted (not objects, no key, a value of
    the wrong type) are ``MalformedResponse``; the caller's transaction rolls back."""
    try:
        yield
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError) as error:
        raise MalformedResponse(
            f"{model.cdms.entity_set}: a record the remote answered cannot be stored "
            f"({type(error).__name__}: {error})"
        ) from error
