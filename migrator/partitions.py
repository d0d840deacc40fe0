"""A full resync split across workers: the entity set read in ``createdon`` ranges, each range
by a task of its own with a checkpoint of its own (``SyncPartition``), merged into the model's
one ``SyncState`` when the last range is in.

Why ``createdon``: the remote can filter on it (``ge``/``lt``), a record's value never changes
(so a record lies in one range for good), and ranges of it can be cut where the records are.
Keys are no such thing: Dataverse compares GUIDs in SQL Server's byte order, not as text, and
keys a client generates are random, so key ranges cannot be cut by what a read has seen.

1. **Plan** (under the model's resync lock): a change-tracking read of the keys and
   ``createdon`` alone (a sixth of a full page's bytes) notes every key (``SeenKey``), samples
   ``createdon`` to cut ranges of equal size, and keeps the delta link -- taken *before* any
   range is read, so the next incremental resync replays whatever changed while the ranges
   were read (an older version never overwrites a newer row: ``inbound.write_page``).
2. **Ranges**, in any order, on any worker, each resumable from its last page written.
3. **Merge**, by whichever range finishes last: the local rows whose key the plan did not see
   are deleted, the counts added up, the run ends as a full resync ends.

A table without change tracking is planned from a plain read of the same columns and kept in
step by its ``modifiedon`` watermark afterwards, from the moment the plan began."""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from dateutil.parser import isoparse
from django.db import transaction
from django.utils import timezone

from cdms_api import odata
from cdms_api.client import Page
from cdms_api.errors import ChangesExpired, ChangeTrackingNotEnabled
from cdms_api.governor import background

from .inbound import write_page
from .locks import ResyncLock
from .resync import Outcome, Run
from .state import SyncPartition, SyncState, mark_seen

logger = logging.getLogger("migrator.resync")
Phase, Mode, Status = SyncState.Phase, SyncState.Mode, SyncState.Status
CREATED = "createdon"
#: createdon values kept to cut the ranges (a uniform sample of every record's)
SAMPLE = 10_000


class Sample:
    """A uniform sample of a stream of values (reservoir sampling), in constant memory."""

    def __init__(self, size: int = SAMPLE, seed: int = 0):
        self.size, self.seen, self.values = size, 0, []
        self._random = random.Random(seed)

    def add(self, values: Iterable[datetime]) -> None:
        for value in values:
            self.seen += 1
            if len(self.values) < self.size:
                self.values.append(value)
            elif (slot := self._random.randrange(self.seen)) < self.size:
                self.values[slot] = value

    def cuts(self, ranges: int) -> list[datetime]:
        """At most ``ranges - 1`` distinct bounds cutting the values into ranges of equal
        size (fewer when many records share a ``createdon``)."""
        ordered = sorted(self.values)
        if not ordered:
            return []
        picked = {ordered[len(ordered) * i // ranges] for i in range(1, ranges)}
        return sorted(picked - {ordered[0]})


def range_filter(lower: datetime | None, upper: datetime | None) -> odata.Node | None:
    """``createdon`` in ``[lower, upper)``; the first range also holds records without one."""
    created = odata.Prop(CREATED)
    if lower is None and upper is None:
        return None
    if lower is None:
        return created.lt(upper) | created.eq(None)
    if upper is None:
        return created.ge(lower)
    return created.ge(lower) & created.lt(upper)


@dataclass
class RangeOutcome:
    model: str
    number: int
    ran: bool = True
    records: int = 0
    note: str = ""

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class PartitionedRun(Run):
    def plan(self, ranges: int) -> list[int]:
        """Begin the run (or go on with one that stopped); returns the ranges left to read."""
        state = self.state
        if state.partitions.exists():
            return list(state.partitions.filter(done=False).values_list("number", flat=True))
        if state.phase != Phase.FULL or state.read_done or not state.checkpoint:
            state.created = state.updated = state.deleted = 0
            state.note, state.mode = "", Mode.CHANGES
            state.status, state.last_error = Status.RUNNING, ""
            self.begin(Phase.FULL)
        sample = Sample()
        try:
            self.read_keys(self.keys_pages(), sample)
        except ChangeTrackingNotEnabled:
            self.without_change_tracking()
            state.watermark = state.run_started_at
            self.begin(Phase.FULL)
            self.read_keys(self.keys_pages(), sample)
        except ChangesExpired:  # the link of a plan that stopped: the read begins again
            state.note = self.expired()
            self.begin(Phase.FULL)
            sample = Sample()
            self.read_keys(self.keys_pages(), sample)
        cuts = sample.cuts(ranges)
        bounds = [None, *cuts, None]
        with transaction.atomic():
            SyncPartition.objects.bulk_create(
                SyncPartition(state=state, number=number, lower=lower, upper=upper)
                for number, (lower, upper) in enumerate(itertools.pairwise(bounds))
            )
        logger.info("%s: %d keys read, %d ranges to read", self.label, sample.seen, len(cuts) + 1)
        return list(range(len(cuts) + 1))

    def keys_pages(self) -> Iterator[Page]:
        select = [self.mapping.key, CREATED]
        link = self.state.checkpoint or None
        if self.state.mode == Mode.CHANGES:
            return self.client.change_pages(self.mapping.entity_set, select=select, link=link)
        return self.client.pages(self.mapping.entity_set, select=select, link=link)

    def read_keys(self, pages: Iterator[Page], sample: Sample) -> None:
        state, key = self.state, self.mapping.key
        for page in pages:
            sample.add(isoparse(r[CREATED]) for r in page.records if r.get(CREATED))
            with transaction.atomic():
                mark_seen(state, [record[key] for record in page.records])
                state.checkpoint = page.next_link or ""
                if page.next_link is None:
                    state.delta_link = page.delta_link or ""
                    state.read_done = True
                state.save()

    def read_range(self, number: int) -> RangeOutcome:
        part = self.state.partitions.get(number=number)
        outcome = RangeOutcome(self.label, number)
        pages = self.client.pages(
            self.mapping.entity_set,
            filter=range_filter(part.lower, part.upper),
            select=self.mapping.select,
            link=part.checkpoint or None,
        )
        for page in [] if part.done else pages:
            with transaction.atomic():
                written = write_page(self.model, page.records)
                mark_seen(self.state, [record[self.mapping.key] for record in page.records])
                part.created += len(written.created)
                part.updated += len(written.updated)
                part.records_done += len(page.records)
                part.checkpoint, part.done = page.next_link or "", page.next_link is None
                part.save()
            outcome.records += len(page.records)
        return outcome

    def merge(self) -> bool:
        """End the run if every range is read; whether it did."""
        state = self.state
        ranges = list(state.partitions.all())
        if not ranges or not all(part.done for part in ranges) or state.phase != Phase.FULL:
            return False
        state.created = sum(part.created for part in ranges)
        state.updated = sum(part.updated for part in ranges)
        state.records_done = sum(part.records_done for part in ranges)
        self.kinds.append("full")
        self.delete_unseen()
        state.last_full_at = timezone.now()
        state.partitions.all().delete()
        self.end()
        state.status = Status.OK
        state.save()
        return True


@contextmanager
def recorded(run: Run) -> Iterator[None]:
    """The run's requests as background work; an error recorded in its state, and raised."""
    try:
        with background():
            yield
    except BaseException as error:
        run.failed(error)
        raise


def plan(model, ranges: int) -> list[int] | Outcome:
    """Begin a partitioned full resync of ``model`` in ``ranges`` ranges (or go on with the one
    in progress): the numbers of the ranges to read, or the ``Outcome`` saying why not."""
    label = model._meta.label
    with ResyncLock(label) as held:
        if not held:
            return Outcome(label, ran=False, note="a resync of it is running already")
        run = PartitionedRun(model, None)
        with recorded(run):
            return run.plan(ranges)


def read_range(model, number: int) -> RangeOutcome:
    """Read one range (from its checkpoint), unless another worker is reading it."""
    label = model._meta.label
    with ResyncLock(f"{label}#{number}") as held:
        if not held:
            return RangeOutcome(label, number, ran=False, note="another worker is reading it")
        run = PartitionedRun(model, None)
        with recorded(run):
            return run.read_range(number)


def merge(model, wait_s: float = 60.0) -> Outcome | None:
    """End the run if every range is read, waiting ``wait_s`` at most for the model's lock
    (another range may be merging: it finds this one's done by then). None: not yet."""
    label, started = model._meta.label, time.monotonic()
    with ResyncLock(label, wait_s=wait_s) as held:
        if not held:
            return None
        run = PartitionedRun(model, None)
        if not run.merge():
            return None
        state = run.state
        return Outcome(
            label,
            kinds=("full",),
            created=state.created,
            updated=state.updated,
            deleted=state.deleted,
            note=f"read in ranges of createdon; {state.note}".rstrip("; "),
            seconds=time.monotonic() - started,
        )


def resync_partitioned(model, ranges: int) -> Outcome:
    """The whole partitioned run in this process, range after range (what the Celery tasks
    ``migrator.resync_partitioned`` and ``migrator.resync_partition`` spread over workers)."""
    started = time.monotonic()
    numbers = plan(model, ranges)
    if isinstance(numbers, Outcome):
        return numbers
    for number in numbers:
        read_range(model, number)
    outcome = merge(model) or Outcome(model._meta.label, ran=False, note="ranges left unread")
    outcome.seconds = time.monotonic() - started
    return outcome
