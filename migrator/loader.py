"""The loader: remote records written into the local table, one bulk write per page.

Reads (the sync engine) and writes (the record a create or an update returns) both store
records here, so that a local row always holds what the CRM stored, converted once, the same
way. Records whose ETag is the one stored are skipped; the related rows their lookups point
at are written first (read by key when missing locally, or taken from ``$expand``)."""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from dateutil.parser import isoparse
from django.db import connections, models, router, transaction
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import MalformedResponse

from . import local, remote
from .mapping import FieldMap, Mapping
from .metrics import count_loaded
from .upsert import upsert

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
    whether it wrote anything."""

    etags: dict[str, str]
    wrote: bool = False


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
        keyed = _keyed(model, records)
        kept = {k: r for k, r in keyed.items() if k not in deleting}
        if _write(model, kept, depth, refresh, stored.etags if stored else {}) and stored:
            stored.wrote = True
    return set(keyed)


def store(model: type[CDMSModel], records: list[dict]) -> dict[str, dict[str, Any]]:
    """Store the records writes returned (one bulk write, as ``load``) and give each one's
    local values, by key, for the instances that were written."""
    with answered(model):
        return _store(model, records)


def _store(model: type[CDMSModel], records: list[dict]) -> dict[str, dict[str, Any]]:
    keyed = _keyed(model, records)
    written = _write(model, keyed, 0, {}, {})
    rest = {key: record for key, record in keyed.items() if key not in written}
    if rest:  # already stored, by a read that came first: the values still go to the instances
        related = _related_ids(model, list(rest.values()), 0, {})
        for key, record in rest.items():
            written[key] = values_of(model.cdms, record, related)[0]
    return written


def _keyed(model: type[CDMSModel], records: list[dict]) -> dict[str, dict]:
    """The records by their key, canonicalised once."""
    key = model.cdms.key
    return {key_of(record[key]): record for record in records}


def _write(
    model: type[CDMSModel],
    keyed: dict[str, dict],
    depth: int,
    refresh: dict | None,
    known: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """``load``'s bulk write; returns the local values written, by key. The ETags stored are
    compared without building the rows; those ``known`` are not read again."""
    mapping = model.cdms
    records = list(keyed.values())
    related = _related_ids(model, records, depth, refresh or {})  # may write some records first
    etags = {key: known[key] for key in keyed if key in known}
    if unknown := [key for key in keyed if key not in known]:
        stored = local.rows(model).filter(cdms_pk__in=unknown).values_list("cdms_pk", "cdms_etag")
        etags.update((str(key), etag) for key, etag in stored)
    written = {}
    for key, record in keyed.items():
        if key in etags and etags[key] == record.get("@odata.etag"):
            continue
        values, unheld = values_of(mapping, record, related)
        if unheld:
            _warn_null(mapping, unheld[0], record, "the record is not stored locally")
            continue
        written[key] = values
    if written:
        # another process may have brought the same record in meanwhile: its row is updated
        fields = ["cdms_etag", "cdms_modified", *(fm.field.attname for fm in mapping.fields)]
        now = timezone.now()
        with transaction.atomic(using=router.db_for_write(model)):
            # Rows are locked in one order, their primary key's, by every page writer (here
            # and ``inbound.write_page``), and new ones inserted in key order: two writers of
            # overlapping pages wait, never deadlock.
            _lock_in_order(model, written)
            upsert(model, dict(sorted(written.items())), fields, now)
            _link_within(model, keyed, written, now)
        created = sum(key not in etags for key in written)
        transaction.on_commit(partial(count_loaded, model, created, len(written) - created))
    return written


def _lock_in_order(model: type[CDMSModel], keys: Iterable[str]) -> None:
    if connections[router.db_for_write(model)].features.has_select_for_update:
        rows = local.rows(model).select_for_update().filter(cdms_pk__in=list(keys))
        list(rows.order_by("pk").values_list("pk", flat=True))


def values_of(
    mapping: Mapping, record: dict, related: dict
) -> tuple[dict[str, Any], list[FieldMap]]:
    """The local values of a record: bookkeeping and mapped fields, lookups as local ids; and
    the fields that cannot hold what the record has (a null where the field is ``null=False``
    with no default), left out of the values."""
    values = {
        "cdms_etag": record.get("@odata.etag", ""),
        "cdms_modified": _modifiedon(record.get("modifiedon")),
    }
    unheld = []
    for fm in mapping.fields:
        if fm.is_lookup:
            key = fm.lookup_key(record)
            value = related[fm.field.name].get(key_of(key)) if key else None
            if key and value is None:
                values["cdms_etag"] = ""  # a lookup not resolved yet: the next read redoes it
        else:
            value = fm.to_python(record.get(fm.remote))
        if value is None and not fm.field.null:
            if not fm.field.has_default():
                unheld.append(fm)
                continue
            value = fm.field.get_default()
        values[fm.field.attname] = value
    return values, unheld


def record_values(model: type[CDMSModel], record: dict) -> dict[str, Any]:
    """The local values of one record (the answer to a write), its lookups resolved; a field
    that cannot hold the record's null keeps its local value (with a warning)."""
    with answered(model):
        key_of(record[model.cdms.key])  # an answer without its record's key is malformed
        values, unheld = values_of(model.cdms, record, _related_ids(model, [record], 0, {}))
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
    return isoparse(value) if value else None


def _link_within(
    model: type[CDMSModel], keyed: dict[str, dict], written: dict[str, dict], now
) -> None:
    """Lookups from a model to itself whose target came in the same page (a parent and its
    subsidiary read together): set once both rows exist, in one more bulk write."""
    lookups = [fm for fm in model.cdms.fields if fm.is_lookup and fm.target is model]
    if not lookups:
        return
    pointing = {}  # key -> {lookup's attname: the key it points at}
    for key in written:
        targets = {
            fm.field.attname: key_of(target)
            for fm in lookups
            if (target := fm.lookup_key(keyed[key]))
        }
        if targets:
            pointing[key] = targets
    ids = _local_ids(model, {target for t in pointing.values() for target in t.values()})
    every_lookup = [fm for fm in model.cdms.fields if fm.is_lookup]
    linked = {}
    for key, targets in pointing.items():
        if not any(ids.get(target) for target in targets.values()):
            continue
        record, values = keyed[key], {**written[key]}
        for attname, target in targets.items():
            values[attname] = ids.get(target)
        if all(
            values[fm.field.attname] is not None or not fm.lookup_key(record) for fm in every_lookup
        ):
            values["cdms_etag"] = record.get("@odata.etag", "")  # resolved after all
        linked[key] = values
    fields = ["cdms_etag", *(fm.field.attname for fm in lookups)]
    upsert(model, linked, fields, now)


def _local_ids(model: type[models.Model], keys: set[str]) -> dict[str, Any]:
    """Remote key -> local id, for the rows of ``keys`` stored locally."""
    if not keys:
        return {}
    pairs = local.rows(model).filter(cdms_pk__in=keys).values_list("cdms_pk", "pk")
    return {str(key): pk for key, pk in pairs}


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
        wanted = {key_of(key) for r in records if (key := fm.lookup_key(r))}
        refreshed = fm.field.name in refresh
        if refreshed and all(fm.navigation in r for r in records):
            # they came with the records ($expand): written first, no request of their own
            expanded = {key_of(e[target.cdms.key]): e for r in records if (e := r[fm.navigation])}
            load(target, list(expanded.values()), depth + 1, refresh[fm.field.name])
            refreshed = False
        known = _local_ids(target, wanted)
        missing = set(wanted) if refreshed else wanted - set(known)
        if missing and target is model:
            missing -= set(_keyed(model, records))  # written in this same page
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
