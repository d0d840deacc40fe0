"""Resync: bring a synced model's whole local table in step with its remote entity set.

- **Full**: a change-tracking read of the whole set (``$select`` of the mapped properties),
  each page written in one transaction (``inbound.write_page``: one bulk write, unchanged
  ETags skipped, never an older version over a newer row) with the keys it holds
  (``SeenKey``) and the checkpoint; then the local rows whose key was not seen are deleted
  (one anti-join, a chunk per transaction), and the delta link of the read is kept.
- **Incremental**: the stored delta link is followed; the records changed and the keys
  deleted are written with the new link in the same transaction, so a crash neither skips
  nor repeats a change. A link the remote says has expired starts a full resync by itself.
  A run whose first answer is its last and holds no change (the usual case, and each read of
  a model whose reads follow the change feed) writes its state once: no ``RUNNING`` status
  or checkpoint is kept for a one-request run.
- **Without change tracking** (the remote says the table has none): records are read by a
  ``modifiedon`` watermark, less ``CDMS["WATERMARK_OVERLAP_S"]`` (120 s) for writes that
  committed late; deleted records are found by a keys-only sweep every
  ``CDMS["SWEEP_EVERY_S"]`` (3,600 s), which deletes the rows whose key it did not see.
- **Resumable**: every page is written with the link that follows it, so a run stopped at any
  point (a worker killed, an error) goes on from the first page it had not written when the
  model is next resynced, whatever was asked then.
- **One at a time**: a Redis lock per model (``locks``); a resync that finds it held returns
  at once, saying so, and so does one that finds a partitioned full resync in progress
  (``partitions``: a full resync split across workers).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from dateutil.parser import isoparse
from django.db import DatabaseError, router, transaction
from django.utils import timezone

from cdms_api.client import Page, selected
from cdms_api.errors import CDMSError, ChangesExpired, ChangeTrackingNotEnabled
from cdms_api.governor import background

from . import remote, tombstones
from .inbound import delete_rows, write_page
from .locks import LockLost, ResyncLock, ensure_held
from .state import SyncState, forget_seen, mark_seen, unseen
from .synced import synced_models

if TYPE_CHECKING:
    from .models import CDMSModel

logger = logging.getLogger("migrator.resync")
Phase, Mode, Status = SyncState.Phase, SyncState.Mode, SyncState.Status

#: called after each page: records done in this run, and the records expected (None: unknown)
Progress = Callable[[int, int | None], None]


@dataclass
class Outcome:
    """What one resync of a model did."""

    model: str
    ran: bool = True
    kinds: tuple[str, ...] = ()  # "full", "incremental", "sweep", in the order they ran
    created: int = 0
    updated: int = 0
    deleted: int = 0
    note: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if not self.ran:
            return f"{self.model}: {self.note}"
        what = " + ".join(self.kinds) or "nothing to do"
        text = (
            f"{self.model}: {what} in {self.seconds:.1f} s: {self.created} created, "
            f"{self.updated} updated, {self.deleted} deleted"
        )
        return f"{text} ({self.note})" if self.note else text


def resync(model: type[CDMSModel], full: bool = False, progress: Progress | None = None) -> Outcome:
    """Bring the model's table in step: go on with a run that stopped halfway, then (or
    else) a full resync if asked, or if never in step, and an incremental one otherwise.
    Errors are recorded in the model's ``SyncState`` and raised."""
    label = model._meta.label
    with ResyncLock(label) as held:
        if not held:
            logger.info("%s: a resync is running already; this one returns", label)
            return Outcome(label, ran=False, note="a resync of it is running already")
        with background():  # web requests' reads go ahead of the resync's pages
            return resync_held(model, full, progress)


def resync_held(
    model: type[CDMSModel],
    full: bool = False,
    progress: Progress | None = None,
    state: SyncState | None = None,
) -> Outcome:
    """``resync`` for a caller that holds the model's ``ResyncLock`` (and has read its
    ``state``, if given)."""
    label = model._meta.label
    started = time.monotonic()
    state = state or SyncState.of(model)
    if partitioned := state.partitioned_run():
        return Outcome(label, ran=False, note=partitioned)  # its tasks will end it
    run = Run(model, progress, state)
    try:
        quiet = run.go(full)
    except BaseException as error:
        run.failed(error)
        raise
    if not quiet:  # a run that found nothing writes nothing: the next one purges
        tombstones.purge(router.db_for_write(model))
    return Outcome(
        label,
        kinds=tuple(run.kinds),
        created=state.created,
        updated=state.updated,
        deleted=state.deleted,
        note=state.note,
        seconds=time.monotonic() - started,
    )


class Run:
    def __init__(
        self, model: type[CDMSModel], progress: Progress | None, state: SyncState | None = None
    ):
        self.model, self.label = model, model._meta.label
        self.mapping = model.cdms
        self.client = remote.client()
        self.state = state or SyncState.of(model)
        self.progress = progress
        self.kinds: list[str] = []
        self._total: int | None = None

    # what to run -----------------------------------------------------------------------------
    def go(self, full: bool) -> bool:
        """Run what is due; True when it was an incremental run that found nothing."""
        state = self.state
        resumed = state.phase
        pages = None
        if not (resumed or full) and (state.delta_link or state.watermark):
            pages = self.first_incremental_page()
            if pages is None:
                return True
        if not resumed:
            state.created = state.updated = state.deleted = 0
            state.note = ""
        state.status, state.last_error = Status.RUNNING, ""
        state.save()
        if resumed:
            logger.info(
                "%s: going on with the %s stopped after %d records",
                self.label,
                state.get_phase_display(),
                state.records_done,
            )
            resume = {
                Phase.FULL: self.read_full,
                Phase.INCREMENTAL: self.read_incremental,
                Phase.SWEEP: self.read_sweep,
            }
            resume[resumed]()
        if resumed != Phase.FULL and (full or not (state.delta_link or state.watermark)):
            self.full()
        elif not resumed:
            self.incremental(pages)
        state.status = Status.OK
        state.save()
        return False

    def first_incremental_page(self) -> Iterator[Page] | None:
        """The incremental read, its first page read: None when that page is the last and
        holds no change (the run's outcome and the new link then saved, in one statement),
        else the read's pages from the first. A read the remote refuses (no change tracking,
        an expired link) is left to ``read_incremental``, which knows what to do then."""
        pages = self.incremental_pages()
        try:
            first = next(pages, None)
        except (ChangeTrackingNotEnabled, ChangesExpired) as refused:
            return _raising(refused)
        if first is None:
            return pages
        quiet = not (first.records or first.deleted or first.next_link)
        if not quiet or (self.state.mode == Mode.WATERMARK and self.sweep_due()):
            return itertools.chain([first], pages)
        state = self.state
        self.kinds.append("incremental")
        state.created = state.updated = state.deleted = state.records_done = 0
        state.note, state.status, state.last_error = "", Status.OK, ""
        self.incremental_complete(first)
        state.save()
        return None

    def full(self, note: str = "", tracked: bool = True) -> None:
        """A full resync, by change tracking unless the remote said the table has none."""
        if note:
            self.state.note = note
        if tracked:
            self.state.mode = Mode.CHANGES  # tried again: the table may have it by now
        self.begin(Phase.FULL)
        self.read_full()

    def incremental(self, pages: Iterator[Page] | None = None) -> None:
        self.begin(Phase.INCREMENTAL)
        self.read_incremental(pages)

    def sweep(self) -> None:
        self.begin(Phase.SWEEP)
        self.read_sweep()

    def begin(self, phase: str) -> None:
        state = self.state
        state.phase, state.checkpoint, state.read_done = phase, "", False
        state.run_started_at, state.records_done = timezone.now(), 0
        with transaction.atomic():
            if phase != Phase.INCREMENTAL:
                forget_seen(state)
            state.save()
        logger.info("%s: %s begins", self.label, state.get_phase_display())

    def failed(self, error: BaseException) -> None:
        """Record the error (the run's checkpoint stays: the next run goes on from it); a
        run that lost its lock leaves the state to the run that holds it."""
        state = self.state
        if isinstance(error, LockLost):
            logger.error("%s: resync stopped: %s", self.label, error)
            return
        state.status = Status.FAILED
        state.last_error = f"{type(error).__name__}: {error}"
        logger.error("%s: resync failed: %s", self.label, state.last_error)
        try:
            state.save(update_fields=["status", "last_error", "updated_at"])
        except DatabaseError:
            logger.exception("%s: the failure could not be recorded", self.label)

    # the runs ----------------------------------------------------------------------------------
    def read_full(self) -> None:
        state = self.state
        self.kinds.append("full")
        if not state.read_done:
            # a checkpoint of another read (a partitioned run's read of keys alone, stopped
            # before its ranges were cut; one from before a field was mapped) is not gone on
            # from: the read begins again
            link = state.checkpoint if selected(state.checkpoint) == self.mapping.select else None
            try:
                if state.mode == Mode.CHANGES:
                    pages = self.client.change_pages(
                        self.mapping.entity_set, select=self.mapping.select, link=link
                    )
                else:
                    pages = self.client.modified_pages(
                        self.mapping.entity_set, select=self.mapping.select, link=link
                    )
                self.consume(pages, seen=True, last=self.read_complete, total=self.total())
            except ChangeTrackingNotEnabled:
                self.without_change_tracking()
                self.kinds.pop()
                return self.full(self.state.note, tracked=False)
            except ChangesExpired:
                self.kinds.pop()
                return self.full(self.expired())
        self.delete_unseen()
        state.last_full_at = timezone.now()
        self.end()

    def incremental_pages(self) -> Iterator[Page]:
        state = self.state
        if state.mode == Mode.CHANGES:
            return self.client.change_pages(
                self.mapping.entity_set,
                select=self.mapping.select,
                link=state.checkpoint or state.delta_link,
            )
        overlap = timedelta(seconds=remote.setting("WATERMARK_OVERLAP_S", 120))
        return self.client.modified_pages(
            self.mapping.entity_set,
            since=state.watermark - overlap,
            select=self.mapping.select,
            link=state.checkpoint or None,
        )

    def read_incremental(self, pages: Iterator[Page] | None = None) -> None:
        """Follow the incremental read (``pages``: its pages, when a first one was read)."""
        state = self.state
        self.kinds.append("incremental")
        try:
            pages = pages or self.incremental_pages()
            self.consume(pages, seen=False, last=self.incremental_complete)
        except ChangeTrackingNotEnabled:
            self.kinds.pop()
            self.without_change_tracking()
            return self.full(self.state.note, tracked=False)
        except ChangesExpired:
            self.kinds.pop()
            return self.full(self.expired())
        if state.mode == Mode.WATERMARK and self.sweep_due():
            self.sweep()

    def read_sweep(self) -> None:
        self.kinds.append("sweep")
        if not self.state.read_done:
            pages = self.client.key_pages(
                self.mapping.entity_set, link=self.state.checkpoint or None
            )
            self.consume(pages, seen=True, write=False, last=self.read_complete, total=self.total())
        self.delete_unseen()
        self.state.last_sweep_at = timezone.now()
        self.end()

    # pages -------------------------------------------------------------------------------------
    def consume(
        self,
        pages: Iterator[Page],
        *,
        seen: bool,
        last: Callable[[Page], None],
        write: bool = True,
        total: int | None = None,
    ) -> None:
        """Write each page with the state it leaves behind (counts, the link that follows,
        the watermark, the keys seen), in one transaction per page."""
        state = self.state
        key = self.mapping.key
        if self.progress is not None:
            self.progress(state.records_done, total)
        for page in pages:
            with transaction.atomic():
                ensure_held()
                if write:
                    written = write_page(self.model, page.records, page.deleted)
                    state.created += len(written.created)
                    state.updated += len(written.updated)
                    state.deleted += len(written.deleted)
                if seen:
                    mark_seen(state, [record[key] for record in page.records])
                if state.mode == Mode.WATERMARK and write and page.records:
                    newest = max(isoparse(r["modifiedon"]) for r in page.records)
                    state.watermark = max(filter(None, [state.watermark, newest]))
                state.records_done += len(page.records) + len(page.deleted)
                state.checkpoint = page.next_link or ""
                if page.next_link is None:
                    last(page)
                state.save()
            if self.progress is not None:
                self.progress(state.records_done, total)

    def read_complete(self, page: Page) -> None:
        if page.delta_link:
            self.state.delta_link = page.delta_link
        self.state.read_done = True

    def incremental_complete(self, page: Page) -> None:
        if page.delta_link:
            self.state.delta_link = page.delta_link
        self.state.last_incremental_at = timezone.now()
        self.state.phase = Phase.IDLE

    def delete_unseen(self) -> None:
        state = self.state
        ensure_held()
        gone = delete_rows(self.model, unseen(self.model, state))
        if gone:
            logger.info("%s: %d local rows whose record is gone deleted", self.label, gone)
        state.deleted += gone
        state.records_done += gone
        if self.progress is not None:
            self.progress(state.records_done, None)

    def end(self) -> None:
        state = self.state
        with transaction.atomic():
            forget_seen(state)
            state.phase, state.checkpoint, state.read_done = Phase.IDLE, "", False
            state.save()
        logger.info(
            "%s: done: %d created, %d updated, %d deleted",
            self.label,
            state.created,
            state.updated,
            state.deleted,
        )

    # helpers -----------------------------------------------------------------------------------
    def without_change_tracking(self) -> None:
        state = self.state
        state.mode, state.delta_link = Mode.WATERMARK, ""
        state.note = "the remote table has no change tracking: kept in step by modifiedon"
        logger.warning("%s: %s", self.label, state.note)

    def expired(self) -> str:
        state = self.state
        state.delta_link = ""
        note = f"the delta link had expired on {timezone.now():%Y-%m-%d %H:%M}: full resync"
        logger.warning("%s: %s (the remote no longer keeps the changes since)", self.label, note)
        return note

    def sweep_due(self) -> bool:
        every = timedelta(seconds=remote.setting("SWEEP_EVERY_S", 3600))
        last = self.state.last_sweep_at or self.state.last_full_at
        return last is None or timezone.now() - last >= every

    def total(self) -> int | None:
        """The records the entity set holds, for the progress bar (the remote's count of the
        last 24 hours, by the logical name the key is named after); None if unknown."""
        key = self.mapping.key
        if self.progress is None or not key.endswith("id"):
            return None
        if self._total is None:
            with contextlib.suppress(CDMSError):
                self._total = self.client.total_record_counts(key[:-2]).get(key[:-2])
        return self._total


def _raising(error: Exception) -> Iterator[Page]:
    """Pages that raise ``error`` when read: a read refused on its first page, handed to
    the code that handles the refusal."""
    raise error
    yield


def resync_all(full: bool = False, progress: Progress | None = None) -> Iterable[Outcome]:
    """Resync every synced model in turn (related models first)."""
    for model in synced_models():
        yield resync(model, full=full, progress=progress)
