"""What a benchmark run prints and keeps: a table per benchmark (each figure with its ratio, its
spread and its counts), the per-record cost of the list reads at each size, whether the small
reads grow with the matches, and a JSON file with every run and the machine that produced it."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

import django

from .measure import Comparison, Measurement

HEADER = (
    f"{'case':<46} {'matches':>7}  {'reader':<18} {'wall: median (min-max)':<30} {'CPU':>9}  "
    f"{'ratio':>6} {'CPU ratio':>9}  {'requests':>8} {'records':>8} {'queries':>7} "
    f"{'simulator':>9} {'peak MB':>8}"
)
LIST_READS = ("cold list", "warm list")


def duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def table(figures: list[Comparison], out: TextIO) -> None:
    """One benchmark's figures, a line per reader."""
    print(HEADER, file=out)
    per_call = set()
    for figure in figures:
        for i, measured in enumerate(filter(None, [figure.subject, figure.baseline])):
            case = figure.case if i == 0 else ""
            matches = f"{figure.matches:,}" if figure.matches is not None and i == 0 else ""
            ratios = ("", "")
            if i == 0 and figure.ratio is not None:
                ratios = (f"{figure.ratio:.2f}x", f"{figure.cpu_ratio:.2f}x")
            print(f"{case:<46} {matches:>7}  {_line(measured, *ratios)}", file=out)
            if measured.per > 1:
                per_call.add(measured.per)
        for note in figure.notes:
            print(f"{'':<46} {'':>7}  {note}", file=out)
    for per in sorted(per_call):
        print(
            f"(per call: {per} calls a run; requests, records, queries count all {per})", file=out
        )


def _line(measured: Measurement, ratio: str, cpu_ratio: str) -> str:
    counts = measured.counts
    spread = f"{duration(measured.wall)} ({duration(measured.low)}-{duration(measured.high)})"
    queries = "" if counts.queries is None else f"{counts.queries:,}"
    return (
        f"{measured.reader:<18} {spread:<30} {duration(measured.cpu):>9}  {ratio:>6} "
        f"{cpu_ratio:>9}  {counts.requests:>8,} {counts.records:>8,} {queries:>7} "
        f"{duration(measured.served):>9} {measured.peak_bytes / 1e6:>8.1f}"
    )


def per_record(figures: list[Comparison], out: TextIO) -> None:
    """The list reads' cost per record at each size: flat when the cost is linear in N."""
    cases = _by_case(f for f in figures if f.case.startswith(LIST_READS))
    if not cases:
        return
    sizes = sorted({f.matches for f in figures if f.case.startswith(LIST_READS)})
    print("\nper-record cost (wall median / matches)", file=out)
    columns = "".join(f"{size:>12,}" for size in sizes)
    print(f"{'case':<46} {'reader':<10}{columns}  largest/smallest N", file=out)
    for case, by_size in cases.items():
        for reader in ("subject", "baseline"):
            costs = [
                getattr(by_size[size], reader).wall / size if size in by_size else None
                for size in sizes
            ]
            known = [c for c in costs if c is not None]
            cells = "".join(f"{duration(c):>12}" if c is not None else f"{'':>12}" for c in costs)
            name = getattr(next(iter(by_size.values())), reader).reader
            growth = f"{known[-1] / known[0]:.2f}" if len(known) > 1 else ""
            label = case if reader == "subject" else ""
            print(f"{label:<46} {name:<10}{cells}  {growth:>8}", file=out)


def growth(figures: list[Comparison], out: TextIO) -> None:
    """Requests and records the ORM's small reads make at each size."""
    small = _by_case(
        f
        for f in figures
        if f.benchmark == "reads" and not f.case.startswith(LIST_READS) and f.subject.per == 1
    )
    if not small:
        return
    sizes = sorted({size for by_size in small.values() for size in by_size})
    print("\nsmall reads: remote requests / records read by the ORM, by matches", file=out)
    columns = "".join(f"{size:>16,}" for size in sizes)
    print(f"{'case':<46}{columns}  records read grew (matches grew)", file=out)
    for case, by_size in small.items():
        present = [size for size in sizes if size in by_size]
        counts = [by_size[size].subject.counts for size in present]
        cells = "".join(f"{f'{c.requests} / {c.records:,}':>16}" for c in counts)
        first, last = counts[0].records, counts[-1].records
        grew = f"{last / first:.1f}x" if first else "none" if not last else "from none"
        print(f"{case:<46}{cells}  {grew} ({present[-1] / present[0]:.0f}x)", file=out)


def _by_case(figures: Iterable[Comparison]) -> dict[str, dict[int, Comparison]]:
    cases: dict[str, dict[int, Comparison]] = {}
    for figure in figures:
        if figure.matches is not None:
            cases.setdefault(figure.case, {})[figure.matches] = figure
    return cases


def noise(figures: list[Comparison], load: tuple[tuple[float, ...], ...], out: TextIO) -> None:
    spreads = [m.spread for f in figures for m in (f.subject, f.baseline) if m is not None]
    if spreads:
        print(
            "\nnoise: spread of the runs (max-min)/median: "
            f"median {statistics.median(spreads):.0%}, largest {max(spreads):.0%}; "
            "load average (1, 5, 15 min) before "
            f"{_load(load[0])}, after {_load(load[1])}",
            file=out,
        )


def _load(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def machine() -> dict[str, Any]:
    """The machine a run was made on."""
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "django": django.get_version(),
    }


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
