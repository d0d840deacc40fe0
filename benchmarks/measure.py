"""How every benchmark measures a reader (one way of getting a result) against its baseline.

Three passes, so that no instrument weighs on another figure:

1. a counting pass, which also warms the reader up (connections, tokens, caches): remote
   requests, records read and the simulator's own time (its journal), local queries;
2. ``runs`` timed runs without any instrument, alternating reader and baseline so that drift
   on a shared machine hits both alike: wall time and the reader's CPU time (the simulator runs
   in a process of its own, so its CPU is not counted);
3. a memory pass under ``tracemalloc``, which slows what it traces: the peak Python memory.

Figures are never pass/fail; each is a ratio to its baseline, measured in the same run.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cdms_api.simulator.app import API_PREFIX
from cdms_api.simulator.testing import SimulatorHandle


@dataclass(frozen=True)
class Plan:
    """How much to measure: group sizes (matching records), timed runs per figure, operations
    per run for the per-object figures, records for the paged-read figures."""

    sizes: tuple[int, ...] = (1000, 5000, 20_000)
    runs: int = 5
    operations: int = 50
    records: int = 50_000


FULL = Plan()
QUICK = Plan(sizes=(100, 500), runs=2, operations=5, records=2000)


@dataclass
class Counts:
    """What one run did: remote requests, records the remote sent, local queries (None where
    there is no local database)."""

    requests: int
    records: int
    queries: int | None = None


class Journal:
    """What the simulator's journal tells of the requests made while an action ran: their
    counts, and the time the simulator spent serving them (which it records for every
    request, so reading it costs the timed runs nothing)."""

    def __init__(self, simulator: SimulatorHandle):
        self.simulator = simulator

    def count(self, action: Callable[[], Any]) -> Counts:
        """Web API requests only: a client's first request for a token (then kept for an
        hour) is no part of what a read costs."""
        self.start()
        action()
        journal = [e for e in self.simulator.journal() if e["path"].startswith(API_PREFIX)]
        return Counts(len(journal), sum(entry["records"] or 0 for entry in journal))

    def start(self) -> None:
        self.simulator.clear_journal()

    def served_s(self) -> float:
        """Seconds the simulator spent serving the requests since ``start()``."""
        return sum(entry["duration_ms"] for entry in self.simulator.journal()) / 1000


@dataclass
class Reader:
    """``action`` is what is measured, ``per`` operations at a time (figures are per
    operation); ``prepare`` sets the stage before each run, untimed."""

    name: str
    action: Callable[[], Any]
    prepare: Callable[[], Any] = lambda: None
    per: int = 1


@dataclass
class Measurement:
    reader: str
    wall_s: list[float]
    cpu_s: list[float]
    served_s: list[float]
    per: int
    counts: Counts
    peak_bytes: int

    @property
    def wall(self) -> float:
        """The median wall time of one operation."""
        return statistics.median(self.wall_s) / self.per

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpu_s) / self.per

    @property
    def served(self) -> float:
        """The median time the simulator spent serving one operation's requests."""
        return statistics.median(self.served_s) / self.per

    @property
    def low(self) -> float:
        return min(self.wall_s) / self.per

    @property
    def high(self) -> float:
        return max(self.wall_s) / self.per

    @property
    def spread(self) -> float:
        """The range of the runs relative to their median: how noisy the figure is."""
        return (self.high - self.low) / self.wall if self.wall else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "reader": self.reader,
            "operations_per_run": self.per,
            "wall_s": {"median": self.wall, "min": self.low, "max": self.high},
            "cpu_s": {"median": self.cpu},
            "simulator_s": {"median": self.served},
            "spread": self.spread,
            "runs_wall_s": self.wall_s,
            "runs_cpu_s": self.cpu_s,
            "runs_simulator_s": self.served_s,
            "remote_requests": self.counts.requests,
            "records_read": self.counts.records,
            "local_queries": self.counts.queries,
            "peak_memory_bytes": self.peak_bytes,
        }


@dataclass
class Comparison:
    """One figure: the subject measured against its baseline (none for a plain rate)."""

    benchmark: str
    case: str
    matches: int | None
    subject: Measurement
    baseline: Measurement | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        """Wall time to the baseline's."""
        if self.baseline is None or not self.baseline.wall:
            return None
        return self.subject.wall / self.baseline.wall

    @property
    def cpu_ratio(self) -> float | None:
        """The reader's CPU time to the baseline's: its own work, the remote's left out."""
        if self.baseline is None or not self.baseline.cpu:
            return None
        return self.subject.cpu / self.baseline.cpu

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "case": self.case,
            "matches": self.matches,
            "ratio": self.ratio,
            "cpu_ratio": self.cpu_ratio,
            "subject": self.subject.as_json(),
            "baseline": None if self.baseline is None else self.baseline.as_json(),
            "notes": self.notes,
        }


def compare(
    benchmark: str,
    case: str,
    matches: int | None,
    readers: list[Reader],
    runs: int,
    journal: Journal,
) -> Comparison:
    """Measure the subject (``readers[0]``) and its baseline (``readers[1]``, if any)."""
    print(f"{benchmark}: {case}" + (f", {matches:,}" if matches else ""), file=sys.stderr)
    counts = [_counted(reader, journal) for reader in readers]
    timed: list[list[tuple[float, float, float]]] = [[] for _ in readers]
    for _ in range(runs):
        for reader, runs_of_reader in zip(readers, timed, strict=True):
            runs_of_reader.append(_timed(reader, journal))
    peaks = [_peak(reader) for reader in readers]
    measured = []
    for reader, runs_of_reader, counted, peak in zip(readers, timed, counts, peaks, strict=True):
        wall, cpu, served = (list(column) for column in zip(*runs_of_reader, strict=True))
        measured.append(Measurement(reader.name, wall, cpu, served, reader.per, counted, peak))
    return Comparison(
        benchmark, case, matches, measured[0], measured[1] if len(measured) > 1 else None
    )


def compare_twice(
    benchmark: str,
    case: str,
    matches: int | None,
    subject: Reader,
    raw: Reader,
    by_hand: Reader,
    runs: int,
    journal: Journal,
) -> list[Comparison]:
    """A per-object call against the raw request alone, and against the same result by hand
    (the request and Django's own local work): what it adds to each."""
    same_result = f"{case}, the same result by hand"
    return [
        compare(benchmark, case, matches, [subject, raw], runs, journal),
        compare(benchmark, same_result, matches, [subject, by_hand], runs, journal),
    ]


def _counted(reader: Reader, journal: Journal) -> Counts:
    reader.prepare()
    return journal.count(reader.action)


def _timed(reader: Reader, journal: Journal) -> tuple[float, float, float]:
    """Wall and CPU seconds of one run, and the simulator's."""
    reader.prepare()
    journal.start()
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    reader.action()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, journal.served_s()


def _peak(reader: Reader) -> int:
    reader.prepare()
    gc.collect()
    tracemalloc.start()
    try:
        reader.action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
