"""Remote writes of many records: sent in ``$batch`` requests of up to 1,000 operations (each
its own outcome), as one changeset (all or nothing), or as ``CreateMultiple``; then each write
carries its outcome, found out exactly once, and the records the remote stored are adopted in
one bulk write per model.

A write's outcome is decided the way a single save decides it (``writes``): a delete of a
record already gone is done; a create whose key exists adopts the record it made on an earlier
attempt (its key was generated for it), sent again as an update; an update refused on its
ETag (412) is done if the record holds every value sent. An outcome the client cannot know (a
dropped connection, a 5xx) is found out by reading the records back, one read per model: a
write that was not applied is sent again (with its ETag, so it cannot overwrite a change made
since), up to ``ROUNDS`` sends in all. A write whose attempt timed out is never sent again:
the remote may still be serving that attempt, and a read that does not find it applied only
says "not yet" (``CDMSError.in_flight``); its error stands, ambiguous."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdms_api.batch import MAX_OPERATIONS, Batch, Operation
from cdms_api.client import MAX_BULK
from cdms_api.errors import (
    CDMSError,
    DuplicateKey,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
)

from . import remote
from .instances import created_so, give, holds, note_create
from .loader import key_of, store

if TYPE_CHECKING:
    from .models import CDMSModel

#: sends of a write at most: the first, and again after it was found not applied
ROUNDS = 3


class Kind(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(eq=False)
class RemoteWrite:
    """One record's remote write and, once sent, its outcome: ``done`` (with ``record``, what
    the remote stored, for a create or an update) or ``error``. ``target`` is the instance the
    outcome is given to (None: the local row only); ``names`` the attnames ``body`` sends
    (None: every mapped field); ``etag`` the ``If-Match`` (None: any version)."""

    kind: Kind
    model: type[CDMSModel]
    key: str
    body: dict[str, Any] | None = None
    etag: str | None = None
    target: Any = None
    names: set[str] | None = None
    record: dict[str, Any] | None = None
    done: bool = False
    error: CDMSError | None = None
    #: a create whose key the remote has already: the record it made earlier, updated
    duplicate: DuplicateKey | None = None

    @property
    def entity_set(self) -> str:
        return self.model.cdms.entity_set

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.model.__name__} {self.key}>"


# The judgement of one send: what happens next to a write.
DONE, FAILED, AGAIN, UNKNOWN = "done", "failed", "again", "unknown"


def send(writes: Iterable[RemoteWrite], atomic: bool = False) -> None:
    """Send the writes, in ``$batch`` requests of up to 1,000 operations each; with
    ``atomic``, as one changeset (at most 1,000 writes), applied all together or not at all.
    Each write then has its outcome."""
    todo = [w for w in writes if not w.done]
    if atomic and len(todo) > MAX_OPERATIONS:
        raise ValueError(f"a changeset holds at most {MAX_OPERATIONS} writes")
    for round_ in range(ROUNDS):
        if not todo:
            return
        todo = (_changeset if atomic else _separately)(todo, last=round_ == ROUNDS - 1)


def create_many(writes: list[RemoteWrite]) -> None:
    """Creates of one model, with ``CreateMultiple`` (one request per 1,000, all or nothing)
    where the table offers it, each chunk's records then read back in one request (the
    action answers keys only; the ETags are needed for the next save's ``If-Match``). A chunk
    the remote refuses is sent again one create per operation in a ``$batch``, so that each
    record gets its own outcome (as Microsoft's bulk operations guide advises); elsewhere
    creates go in ``$batch`` from the start."""
    if not writes:
        return
    client, model = remote.client(), writes[0].model
    mapping = model.cdms
    if "CreateMultiple" not in client.bulk_messages(mapping.entity_set):
        send(writes)
        return
    for start in range(0, len(writes), MAX_BULK):
        chunk = writes[start : start + MAX_BULK]
        for w in chunk:
            note_create(w.target, w.body or {})
        try:
            client.create_multiple(
                mapping.entity_set, [{**w.body, mapping.key: w.key} for w in chunk]
            )
        except CDMSError as error:
            if error.in_flight:  # it may still land: sent again, it could land after a delete
                for w in chunk:
                    w.error = error
            else:
                send(chunk)
            continue
        for w in chunk:
            w.done = True  # created, whatever the read back finds
        try:
            stored = client.records(mapping.entity_set, [w.key for w in chunk], mapping.select)
        except CDMSError:
            continue  # their rows keep the values sent, with no ETag: the next read fills them
        found = {key_of(r[mapping.key]): r for r in stored}
        for w in chunk:
            w.record = found.get(w.key)


def apply(writes: Iterable[RemoteWrite]) -> None:
    """Store what the done writes' records hold: one bulk write per model (the loader), and
    each write's instance given its values."""
    by_model: dict[type, list[RemoteWrite]] = defaultdict(list)
    for w in writes:
        if w.done and w.record is not None:
            by_model[w.model].append(w)
    for model, done in by_model.items():
        values = store(model, [w.record for w in done])
        for w in done:
            if w.target is not None and w.key in values:
                give(w.target, values[w.key], w.names)


# Sending -------------------------------------------------------------------------------------


def _transmit(writes: list[RemoteWrite], atomic: bool) -> list[Operation]:
    """One ``$batch`` request; the operations in the writes' order."""
    batch = Batch(remote.client())
    if atomic:
        with batch.changeset():
            operations = [_operation(batch, w) for w in writes]
    else:
        operations = [_operation(batch, w) for w in writes]
    batch.send()
    return operations


def _operation(batch: Batch, write: RemoteWrite) -> Operation:
    if write.kind is Kind.CREATE:
        note_create(write.target, write.body or {})
        return batch.create(write.entity_set, write.body or {}, key=write.key)
    if write.kind is Kind.UPDATE:
        return batch.update(write.entity_set, write.key, write.body or {}, etag=write.etag)
    return batch.delete(write.entity_set, write.key, etag=write.etag)


def _separately(writes: list[RemoteWrite], last: bool) -> list[RemoteWrite]:
    """Send each write as an operation of its own; returns those to send again."""
    again, unknown = [], []
    for start in range(0, len(writes), MAX_OPERATIONS):
        chunk = writes[start : start + MAX_OPERATIONS]
        try:
            operations = _transmit(chunk, atomic=False)
        except CDMSError as error:
            for w in chunk:
                w.error = error
            if error.ambiguous:
                unknown += chunk
            continue
        for w, operation in zip(chunk, operations, strict=True):
            verdict = _judge(w, operation)
            if verdict == AGAIN:
                again.append(w)
            elif verdict == UNKNOWN:
                unknown.append(w)
    again += _settle(unknown)
    if last:
        _conclude(again)
        return []
    return again


def _changeset(writes: list[RemoteWrite], last: bool) -> list[RemoteWrite]:
    """Send the writes as one changeset; returns them when it is to be sent again: not
    applied (found out by reading back), or one of them changed (a create that adopts its
    record, a delete of a record already gone, which is done and left out)."""
    try:
        operations = _transmit(writes, atomic=True)
    except CDMSError as error:
        for w in writes:
            w.error = error
        if not error.ambiguous:
            return []
        return _found_out(writes, last)
    if all(operation.ok for operation in operations):
        unknown = [w for w, op in zip(writes, operations, strict=True) if _judge(w, op) == UNKNOWN]
        _settle(unknown)
        return []
    failing = next((op for op in operations if op.cause), operations[0])
    culprit = writes[operations.index(failing)]
    verdict = _judge(culprit, failing)
    if verdict == UNKNOWN:
        found = _read_back([culprit])
        if found is None:
            return _found_out(writes, last=True)
        verdict = _decide(culprit, found.get((culprit.model, culprit.key)))
    others = [w for w in writes if w is not culprit]
    for w in others:
        w.error = NotApplied(culprit)
    if verdict == FAILED:
        return []
    if last:
        # Refused for a reason an earlier attempt of this changeset may have caused (its
        # records exist, or changed): an attempt applied with its answer lost, then sent again
        # by the session (a 503) or by an earlier round. What the records hold decides.
        return _found_out(writes, last)
    return others if verdict == DONE else writes


def _found_out(writes: list[RemoteWrite], last: bool) -> list[RemoteWrite]:
    """A changeset whose outcome is not known: read its records back. All applied: done;
    none: sent again (or, out of rounds or timed out, the errors stand); some: an ambiguous
    error, since someone else wrote too. When the records cannot be read, the errors stand,
    ambiguous."""
    found = _read_back(writes)
    verdicts = [] if found is None else [_decide(w, found.get((w.model, w.key))) for w in writes]
    if verdicts and all(v == DONE for v in verdicts):
        return []
    if verdicts and all(v == AGAIN for v in verdicts):
        return [] if last or any(_may_still_land(w) for w in writes) else writes
    if found is None:
        _not_found_out(writes)
        return []
    unclear = CDMSError("the changeset was found partly applied: someone else wrote too")
    unclear.ambiguous = True
    for w in writes:
        w.done, w.error = False, unclear
    return []


def _conclude(writes: list[RemoteWrite]) -> None:
    """Out of rounds, writes that were to be sent again may be applied after all (a create
    that met its own record, made by an attempt whose answer was lost): read them back; each
    is done, or its error stands (ambiguous when they cannot be read)."""
    if not writes:
        return
    found = _read_back(writes)
    if found is None:
        _not_found_out(writes)
        return
    for w in writes:
        _decide(w, found.get((w.model, w.key)))


def _not_found_out(writes: list[RemoteWrite]) -> None:
    """Writes whose outcome could not be read back: whatever error they met (a 412 or a
    duplicate key may be their own earlier attempt's doing), they may have been applied."""
    for w in writes:
        if w.error is not None:
            w.error.ambiguous = True


class NotApplied(CDMSError):
    """A write of a changeset that was not applied because another write of it failed."""

    def __init__(self, cause: RemoteWrite):
        self.cause = cause
        super().__init__(f"not applied: {cause!r} of the same changeset failed ({cause.error})")


# Judging -------------------------------------------------------------------------------------


def _judge(write: RemoteWrite, operation: Operation) -> str:
    """The outcome of one operation, as a single write would take it."""
    error = operation.error
    if error is None:
        if write.kind is Kind.DELETE:
            return _done(write, None)
        if not isinstance(operation.record, dict) or not operation.record.get(write.model.cdms.key):
            write.error = MalformedResponse(
                f"the answer to a {write.kind.value} of {write.entity_set}({write.key}) "
                "holds no record"
            )
            return UNKNOWN
        return _done(write, operation.record)
    write.error = error
    if write.kind is Kind.DELETE and isinstance(error, NotFound):
        return _done(write, None)  # already gone: what was asked for
    if write.kind is Kind.CREATE and isinstance(error, DuplicateKey):
        write.duplicate = error  # its record is read back, and adopted or not (``_decide``)
        return UNKNOWN
    if write.kind is Kind.UPDATE and write.duplicate is not None and isinstance(error, NotFound):
        write.error = write.duplicate  # the duplicate is another key of the record (alternate)
        return FAILED
    if isinstance(error, PreconditionFailed) or error.ambiguous:
        return UNKNOWN
    return FAILED


def _done(write: RemoteWrite, record: dict[str, Any] | None) -> str:
    write.done, write.record, write.error = True, record, None
    return DONE


def _settle(writes: list[RemoteWrite]) -> list[RemoteWrite]:
    """Read back the records of writes whose outcome is unknown; decide each. Returns the
    writes not applied, to be sent again."""
    if not writes:
        return []
    found = _read_back(writes)
    if found is None:
        _not_found_out(writes)
        return []
    again = []
    for w in writes:
        if _decide(w, found.get((w.model, w.key))) == AGAIN and not _may_still_land(w):
            again.append(w)
    return again


def _may_still_land(write: RemoteWrite) -> bool:
    """The write's last attempt timed out: the remote may apply it yet, after any read."""
    return write.error is not None and write.error.in_flight


def _read_back(writes: list[RemoteWrite]) -> dict[tuple[type, str], dict] | None:
    """The records of the writes, by (model, key); None when they cannot be read."""
    by_model: dict[type, list[str]] = defaultdict(list)
    for w in writes:
        by_model[w.model].append(w.key)
    found: dict[tuple[type, str], dict] = {}
    client = remote.client()
    try:
        for model, keys in by_model.items():
            mapping = model.cdms
            for record in client.records(mapping.entity_set, keys, mapping.select):
                found[(model, key_of(record[mapping.key]))] = record
    except CDMSError:
        return None
    return found


def _decide(write: RemoteWrite, record: dict[str, Any] | None) -> str:
    """Whether a write whose outcome was unknown (or refused on its ETag) was applied, from
    its record as read now: done, to be sent again (not applied, nothing in the way), or
    failed (the record changed, or is gone)."""
    mapping = write.model.cdms
    if write.kind is Kind.DELETE:
        if record is None:
            return _done(write, None)
        if write.etag is None or record.get("@odata.etag") == write.etag:
            return AGAIN
        return _conflict(write, record)
    if write.kind is Kind.CREATE:
        if record is None:
            if write.duplicate is None:
                return AGAIN
            write.error = write.duplicate  # another key of the record (an alternate key)
            return FAILED
        if holds(mapping, write.body or {}, record):
            return _done(write, record)
        if not created_so(write.target, record):
            return _conflict(write, record)
        # the key was generated for this write's object: an earlier attempt created the
        # record, and nobody changed it since; it is sent the values again, as an update
        write.kind, write.etag = Kind.UPDATE, record.get("@odata.etag")
        write.duplicate = write.duplicate or DuplicateKey(f"{write.entity_set}({write.key}) exists")
        return AGAIN
    if record is None:
        write.error = write.duplicate or NotFound(
            f"{write.entity_set}({write.key}) does not exist remotely", status=404
        )
        return FAILED
    if holds(mapping, write.body or {}, record):
        return _done(write, record)
    if write.etag is None or record.get("@odata.etag") == write.etag:
        return AGAIN
    return _conflict(write, record)


def _conflict(write: RemoteWrite, record: dict[str, Any]) -> str:
    """The write failed on a record changed meanwhile: both versions go on the error."""
    if not isinstance(write.error, PreconditionFailed):
        write.error = PreconditionFailed(
            f"{write.entity_set}({write.key}) changed remotely since it was read", status=412
        )
    write.error.sent, write.error.current = write.body, record
    return FAILED
