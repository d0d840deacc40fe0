"""``python -m benchmarks``: run the benchmarks, print their tables, write their figures to a
JSON file. ``--quick`` measures less, for CI. It fails only when a benchmark crashes: figures
are never pass/fail."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
from pathlib import Path

from django.db import connection

from . import (
    client_read,
    governor,
    orm,
    partitions,
    reads,
    report,
    resync,
    round_trips,
    simulator_read,
    writes,
)
from .measure import FULL, QUICK, Comparison, Plan

BENCHMARKS = (
    "simulator",
    "client",
    "reads",
    "writes",
    "round_trips",
    "resync",
    "governor",
    "partitions",
)
#: the resync benchmark's arguments in quick mode (its defaults: 10,000 and 50,000 records)
RESYNC_QUICK = [
    "--sizes",
    "1000",
    "2000",
    "--changes",
    "3",
    "--page-size",
    "500",
    "--list-size",
    "500",
]
RESULTS = Path(__file__).with_name("results")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and 2 runs, for CI")
    parser.add_argument("--runs", type=int, help="timed runs per figure (default: 5; quick: 2)")
    parser.add_argument(
        "--sizes",
        type=lambda text: tuple(int(size) for size in text.split(",")),
        help="matching records of the ORM reads, e.g. 1000,5000,20000 (the default)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS, help="run these only"
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the figures (default: benchmarks/results/<latest|quick>-<db>.json)",
    )
    return parser.parse_args(argv)


def plan_of(options: argparse.Namespace) -> Plan:
    plan = QUICK if options.quick else FULL
    if options.runs:
        plan = dataclasses.replace(plan, runs=options.runs)
    if options.sizes:
        plan = dataclasses.replace(plan, sizes=options.sizes)
    return plan


def main(argv: list[str] | None = None) -> None:
    options = arguments(argv)
    plan = plan_of(options)
    started, load_before = dt.datetime.now(dt.UTC), os.getloadavg()
    figures: list[Comparison] = []
    database, resynced, trips, governed, split = None, None, None, None, None

    def show(name: str, measured: list[Comparison]) -> None:
        print(f"\n== {name}, {plan.runs} timed runs each", flush=True)
        report.table(measured, sys.stdout)
        figures.extend(measured)

    if "simulator" in options.only:
        show("simulator: a paged read", simulator_read.run(plan))
    if "client" in options.only:
        show("client: CDMSClient.iter() against the plain loop", client_read.run(plan))
    if "governor" in options.only:
        print("\n== governor: many processes, one CRM user's limits", flush=True)
        governed = governor.main(governor.QUICK if options.quick else [])
    if {"reads", "writes", "round_trips", "resync", "partitions"} & set(options.only):
        database = orm.database()
        on = f"{database['vendor']} {database['version']}"
        with orm.environment(plan) as env:
            if "reads" in options.only:
                measured = reads.run(env, plan)
                show(f"reads: the ORM against the same result by hand, on {on}", measured)
                report.per_record(measured, sys.stdout)
                report.growth(measured, sys.stdout)
            if "writes" in options.only:
                show(f"writes: the ORM against the raw request, on {on}", writes.run(env, plan))
            if "round_trips" in options.only:
                print(f"\n== round trips per ORM operation, on {on}", flush=True)
                trips = round_trips.run(env, quick=options.quick)
                round_trips.table(trips, sys.stdout)
            if "resync" in options.only:
                print(f"\n== resync, on {on}", flush=True)
                resynced = resync.main(RESYNC_QUICK if options.quick else [])
            if "partitions" in options.only:
                print(f"\n== partitions: a full resync across Celery workers, on {on}", flush=True)
                split = partitions.main(partitions.QUICK if options.quick else [])
    load_after = os.getloadavg()
    report.noise(figures, (load_before, load_after), sys.stdout)

    path = (
        options.json
        or RESULTS / f"{'quick' if options.quick else 'latest'}-{connection.vendor}.json"
    )
    report.write_json(
        path,
        {
            "command": " ".join(
                ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
            ),
            "started": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "plan": dataclasses.asdict(plan),
            "machine": report.machine(),
            "database": database,
            "load_average": {"before": load_before, "after": load_after},
            "figures": [figure.as_json() for figure in figures],
            "round_trips": None if trips is None else round_trips.as_json(trips),
            "resync": resynced,
            "governor": governed,
            "partitions": split,
        },
    )
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    main()
