"""The drift checker: a synced model's local rows compared with its remote records, field by
field through the mapping.

Remote pages (``$orderby`` the key) and local rows (a streamed query in the same order) are
walked in step, like a merge join, so a table of any size is checked in constant memory with
one request per remote page. Dataverse orders keys as SQL Server orders ``uniqueidentifier``
(the last six bytes first), not as text: the walk starts in text order and, when the remote's
first records say otherwise, starts again in SQL Server's (``KeyOrder``).

What looks like drift is read again by key, remote and local, in chunks, and only what still
differs is reported: a user's write between the two reads is not drift. With ``fix``, what is
confirmed is repaired through resync's page writer (``inbound.write_page``): the records
written again, the rows whose record is gone deleted.

The result is kept on the model's ``SyncState`` (``cdms_status``, the admin, the metrics).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, models, transaction
from django.db.models.functions import Cast, Substr
from django.utils import timezone

from cdms_api import odata

from . import local, remote
from .inbound import write_page
from .loader import key_of
from .mapping import FieldMap, Mapping
from .state import SyncState

if TYPE_CHECKING:
    from .models import CDMSModel

MISSING_LOCALLY = "missing locally"
MISSING_REMOTELY = "missing remotely"
DIFFERING = "values differ"
STALE_ETAG = "stale ETag"
KINDS = (MISSING_LOCALLY, MISSING_REMOTELY, DIFFERING, STALE_ETAG)

LOCAL_PAGE = 1000
CONFIRM_CHUNK = 200  # keys read again by key in one request
SHOWN = 50  # differences kept in a report (the counts are exact)


class UnorderedRead(Exception):
    """The remote orders keys in neither of the ``KeyOrder`` s: no merge is possible."""


@dataclass(frozen=True)
class KeyOrder:
    """An order of remote keys: a sort key of their text, and the parts of the local column's
    text (1-based start, length) that the local query orders by, in turn."""

    name: str
    sort_key: Callable[[str], Any]
    parts: tuple[int, ...] = ()  # bytes of uuid.bytes_le, most significant first; (): the text

    def local(self) -> list:
        """The ``order_by`` of the local rows; the column's text has dashes where the
        database has a native UUID type (PostgreSQL), none where it is ``char(32)``."""
        if not self.parts:
            return ["cdms_pk"]  # a UUID, or its hex, orders as its text
        dashed = connection.features.has_native_uuid_field
        text = Cast("cdms_pk", models.CharField())
        return [Substr(text, _offset(i, dashed), 2) for i in self.parts]


def _offset(byte: int, dashed: bool) -> int:
    """Where the hex pair of ``uuid.bytes_le[byte]`` is in the key's text (1-based)."""
    pair = 3 - byte if byte < 4 else 9 - byte if byte < 6 else 13 - byte if byte < 8 else byte
    return 2 * pair + 1 + (dashed and sum(pair >= p for p in (4, 6, 8, 10)))


#: SQL Server's comparison of uniqueidentifiers (.NET's ``SqlGuid``): the last six bytes first
SQL_SERVER_ORDER = (10, 11, 12, 13, 14, 15, 8, 9, 6, 7, 4, 5, 0, 1, 2, 3)
ORDERS = (
    KeyOrder("text", lambda key: key),
    KeyOrder(
        "SQL Server",
        lambda key: bytes(uuid.UUID(key).bytes_le[i] for i in SQL_SERVER_ORDER),
        SQL_SERVER_ORDER,
    ),
)


@dataclass
class Difference:
    key: str
    kind: str
    #: field -> (local value, remote value)
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class Report:
    """What one verify of a model found (and, with ``fix``, repaired)."""

    model: str
    checked: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    differences: list[Difference] = field(default_factory=list)
    fixed: int = 0
    seconds: float = 0.0

    @property
    def drift(self) -> int:
        return sum(self.counts.values())

    def add(self, difference: Difference) -> None:
        self.counts[difference.kind] += 1
        if len(self.differences) < SHOWN:
            self.differences.append(difference)

    def as_dict(self) -> dict:
        return {**asdict(self), "drift": self.drift}

    def summary(self) -> str:
        found = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
        text = f"{self.model}: {self.checked} records checked in {self.seconds:.1f} s: "
        text += f"drift: {found}" if found else "no drift"
        return f"{text}; {self.fixed} repaired" if self.fixed else text


def verify(model: type[CDMSModel], fix: bool = False) -> Report:
    """Compare the model's local table with its remote entity set; keep the result on its
    ``SyncState``."""
    started = time.monotonic()
    for order in ORDERS:
        try:
            report = _walk(model, fix, order)
            break
        except UnorderedRead:
            if order is ORDERS[-1]:
                raise
    report.seconds = time.monotonic() - started
    SyncState.objects.get_or_create(model=report.model)
    SyncState.objects.filter(model=report.model).update(
        verified_at=timezone.now(), drift=report.drift, verify_report=_stored(report)
    )
    return report


def _walk(model: type[CDMSModel], fix: bool, order: KeyOrder) -> Report:
    report = Report(model._meta.label)
    suspects: list[str] = []
    for key in _suspects(model, order):
        report.checked += 1
        if key is not None:
            suspects.append(key)
        if len(suspects) >= CONFIRM_CHUNK:
            _confirm(model, suspects, report, fix)
            suspects = []
    if suspects:
        _confirm(model, suspects, report, fix)
    return report


def _suspects(model: type[CDMSModel], order: KeyOrder) -> Iterator[str | None]:
    """One item per key on either side, in key order: the key when the two sides disagree,
    None when they agree."""
    mapping, rank = model.cdms, order.sort_key
    records, rows = _remote_records(model, order), _local_rows(model, order)
    record, row = next(records, None), next(rows, None)
    while record is not None or row is not None:
        theirs = key_of(record[mapping.key]) if record is not None else None
        mine = row["cdms_pk"] if row is not None else None
        if mine is None or (theirs is not None and rank(theirs) < rank(mine)):
            yield theirs
            record = next(records, None)
        elif theirs is None or rank(mine) < rank(theirs):
            yield mine
            row = next(rows, None)
        else:
            yield None if compare(mapping, mine, row, record) is None else mine
            record, row = next(records, None), next(rows, None)


def _remote_records(model: type[CDMSModel], order: KeyOrder) -> Iterator[dict]:
    mapping = model.cdms
    previous = None
    for record in remote.client().iter(
        mapping.entity_set, select=mapping.select, orderby=[mapping.key]
    ):
        key = key_of(record[mapping.key])
        if previous is not None and order.sort_key(key) <= order.sort_key(previous):
            raise UnorderedRead(
                f"{mapping.entity_set}: the remote ordered {key} after {previous}, which is "
                f"not in {order.name} order"
            )
        previous = key
        yield record


def _local_rows(model: type[CDMSModel], order: KeyOrder) -> Iterator[dict]:
    """Local rows in the order, streamed (``iterator``): the repairs made meanwhile are of
    rows the walk has passed."""
    rows = _local_values(model).order_by(*order.local())
    for row in rows.iterator(chunk_size=LOCAL_PAGE):
        row["cdms_pk"] = str(row["cdms_pk"])
        yield row


def _local_values(model: type[CDMSModel]):
    columns = ["cdms_pk", "cdms_etag", *(_column(fm) for fm in model.cdms.fields)]
    return local.rows(model).filter(cdms_pk__isnull=False).values(*columns)


def _column(fm: FieldMap) -> str:
    """A lookup is compared by the remote key of the row it points at."""
    return f"{fm.field.name}__cdms_pk" if fm.is_lookup else fm.field.attname


def compare(mapping: Mapping, key: str, row: dict | None, record: dict | None) -> Difference | None:
    """How a local row (``_local_values``) and a remote record differ, None if they agree."""
    if row is None and record is None:
        return None
    if row is None:
        return Difference(key, MISSING_LOCALLY)
    if record is None:
        return Difference(key, MISSING_REMOTELY)
    fields = {}
    for fm in mapping.fields:
        mine, theirs = row[_column(fm)], remote_value(fm, record)
        if fm.is_lookup and mine is not None:
            mine = str(mine)
        if mine != theirs:
            fields[fm.field.name] = (mine, theirs)
    if fields:
        return Difference(key, DIFFERING, fields)
    if row["cdms_etag"] != record.get("@odata.etag"):
        return Difference(key, STALE_ETAG, {"ETag": (row["cdms_etag"], record.get("@odata.etag"))})
    return None


def remote_value(fm: FieldMap, record: dict) -> Any:
    """The value the loader stores for a record's property (``loader.values_of_each``)."""
    if fm.is_lookup:
        key = fm.lookup_key(record)
        return key_of(key) if key else None
    value = fm.to_python(record.get(fm.remote))
    if value is None and not fm.field.null and fm.field.has_default():
        return fm.field.get_default()
    return value


def _confirm(model: type[CDMSModel], keys: list[str], report: Report, fix: bool) -> None:
    """Read the suspects again, by key on both sides; report (and repair) what still differs."""
    mapping = model.cdms
    records = {
        key_of(r[mapping.key]): r
        for r in remote.client().iter(
            mapping.entity_set, filter=odata.Prop(mapping.key).isin(keys), select=mapping.select
        )
    }
    rows = {str(row["cdms_pk"]): row for row in _local_values(model).filter(cdms_pk__in=keys)}
    found = [d for key in keys if (d := compare(mapping, key, rows.get(key), records.get(key)))]
    for difference in found:
        report.add(difference)
    if fix and found:
        _repair(model, found, records)
        report.fixed += len(found)


def _repair(model: type[CDMSModel], found: list[Difference], records: dict[str, dict]) -> None:
    """Write the records again (the rows' ETags cleared first, so that the page writer
    neither skips them as unchanged nor keeps them as newer) and delete the rows whose
    record is gone."""
    present = [d.key for d in found if d.key in records]
    gone = [d.key for d in found if d.kind == MISSING_REMOTELY]
    with transaction.atomic():
        local.rows(model).filter(cdms_pk__in=present).update(cdms_etag="", cdms_modified=None)
        write_page(model, [records[key] for key in present], gone)


def _stored(report: Report) -> dict:
    """The report as kept on ``SyncState``: JSON, values as text."""
    return {
        "checked": report.checked,
        "counts": report.counts,
        "fixed": report.fixed,
        "seconds": round(report.seconds, 3),
        "differences": [
            {
                "key": d.key,
                "kind": d.kind,
                "fields": {name: [_text(a), _text(b)] for name, (a, b) in d.fields.items()},
            }
            for d in report.differences
        ],
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
