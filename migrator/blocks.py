"""``migrator.atomic()``: several saves and deletes, across models, all or nothing on both
sides::

    with migrator.atomic():
        org = Organisation.objects.create(name="Initech")
        Contact.objects.create(last_name="Lumbergh", organisation=org)
        old.delete()

Inside the block, writes go to the local database at once, as in ``transaction.atomic()``,
and their remote writes are collected (``Block``) instead of sent. Just before the local
transaction commits they are sent as one ``$batch`` changeset, which the remote applies all
together or not at all; when it fails, the local transaction rolls back and the error is
raised. When the block fails first, nothing is sent. A nested ``transaction.atomic()`` (a
savepoint) that rolls back takes its remote writes with it, as Django drops its
``on_commit`` callbacks. Reads in the block see what it wrote locally: the rows it created,
changed or deleted are not rechecked against the remote, which does not have them yet.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import ContextDecorator
from types import TracebackType

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from cdms_api.batch import MAX_OPERATIONS
from cdms_api.errors import CDMSError, CDMSNotSupported

from . import local
from .batches import Kind, NotApplied, RemoteWrite, apply, send
from .sync import reread


class Block:
    """The remote writes of an open ``migrator.atomic()`` block, in the order they were made.
    Each is tied to a marker registered with ``transaction.on_commit``: a savepoint rolled
    back drops its markers, and with them its writes."""

    def __init__(self, using: str):
        self.using = using
        self._writes: list[tuple[RemoteWrite, _Marker]] = []
        self._rereads: dict[type, set[str]] = defaultdict(set)

    def add(self, write: RemoteWrite) -> None:
        marker = _Marker()
        transaction.on_commit(marker, using=self.using)
        self._writes.append((write, marker))
        if len(self._writes) > MAX_OPERATIONS and len(self.writes()) > MAX_OPERATIONS:
            raise CDMSNotSupported(
                f"a migrator.atomic() block sends its remote writes as one changeset, of at "
                f"most {MAX_OPERATIONS} records: split the block, or use bulk_create() and "
                "qs.update() outside one (each record then has its own outcome)"
            )

    def reread(self, model: type, keys: set[str]) -> None:
        """Rows to read again once the changeset is applied: those a delete unlinked, whose
        lookups the CRM clears itself (``deletion``)."""
        self._rereads[model] |= keys

    def writes(self) -> list[RemoteWrite]:
        """The writes of the block that still stand, one per record: a record's later writes
        merged into its first (a create then an update is a create of the final values; an
        update then a delete is a delete, with the first ETag; a create then a delete is
        nothing)."""
        alive = {id(func) for _, func, _ in connections[self.using].run_on_commit}
        merged: dict[tuple[type, str], RemoteWrite] = {}
        for write, marker in self._writes:
            if id(marker) not in alive:
                continue
            slot = (write.model, write.key)
            merged[slot] = _merge(merged[slot], write) if slot in merged else _copy(write)
        return [w for w in merged.values() if w is not _NOTHING]

    def pending(self, model: type) -> dict[str, str]:
        return {w.key: w.kind.value for w in self.writes() if w.model is model}

    def flush(self) -> list[RemoteWrite]:
        """Send the block's writes as one changeset and store what the remote returned, then
        read again the rows its deletes unlinked; raise the error of the write that failed
        (the local transaction then rolls back)."""
        writes = self.writes()
        if not writes:
            return writes
        send(writes, atomic=True)
        failed = [w for w in writes if not w.done]
        if failed:
            causes = [w.error for w in failed if not isinstance(w.error, NotApplied)]
            raise (causes or [failed[0].error])[0] or CDMSError("the changeset was not applied")
        apply(writes)
        for model, keys in self._rereads.items():
            deleted = {w.key for w in writes if w.model is model and w.kind is Kind.DELETE}
            if keys := keys - deleted:
                reread(model, keys)
        return writes


class _Marker:
    """An ``on_commit`` callback that does nothing: its presence says its write stands."""

    def __call__(self) -> None:
        pass


_NOTHING = RemoteWrite(Kind.DELETE, type(None), "")  # a create then a delete: nothing to send


def _copy(write: RemoteWrite) -> RemoteWrite:
    return RemoteWrite(
        write.kind,
        write.model,
        write.key,
        dict(write.body) if write.body is not None else None,
        write.etag,
        write.target,
        set(write.names) if write.names is not None else None,
    )


def _merge(first: RemoteWrite, then: RemoteWrite) -> RemoteWrite:
    if first is _NOTHING:
        return _copy(then)
    if then.kind is Kind.DELETE:
        if first.kind is Kind.CREATE:
            return _NOTHING
        return RemoteWrite(Kind.DELETE, first.model, first.key, etag=first.etag, target=then.target)
    if then.kind is Kind.CREATE or first.kind is Kind.DELETE:
        return _copy(then)  # sent again in full (a record created anew after a delete: as is)
    first.body = {**(first.body or {}), **(then.body or {})}
    first.target = then.target
    if first.kind is Kind.UPDATE:
        first.names = (
            None if first.names is None or then.names is None else first.names | then.names
        )
    return first


class atomic(ContextDecorator):
    """``transaction.atomic()`` whose remote writes, across models, are sent as one
    changeset just before the local commit (see the module's docstring). Nested blocks join
    the outermost, which sends everything. Use as a context manager or a decorator."""

    def __init__(self, using: str | None = None):
        self.using = using or DEFAULT_DB_ALIAS

    def _recreate_cm(self) -> atomic:
        return type(self)(self.using)  # a decorated function's calls do not share state

    def __enter__(self) -> None:
        self._transaction = transaction.atomic(using=self.using)
        self._transaction.__enter__()
        self._block = None if local.block() is not None else Block(self.using)
        self._token = None if self._block is None else local.open_block(self._block)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        block, self._block = self._block, None
        if block is not None:
            local.close_block(self._token)
            try:
                if kind is None:
                    block.flush()
            except BaseException as failure:
                _forget_creates(block)
                self._transaction.__exit__(type(failure), failure, failure.__traceback__)
                raise
            if kind is not None:
                _forget_creates(block)
        return self._transaction.__exit__(kind, error, traceback)


def _forget_creates(block: Block) -> None:
    """The local rows of the block's creates were rolled back: their instances are unsaved
    again, as a failed ``save()`` leaves them (their remote keys are kept, so that the block
    run again creates each record once)."""
    for write in block.writes():
        if write.kind is Kind.CREATE and write.target is not None:
            write.target.pk, write.target._state.adding = None, True
