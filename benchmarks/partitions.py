"""A full resync split across Celery workers (``migrator.partitions``): 200,000 accounts
created over as many minutes, read in 8 ranges of ``createdon`` by 1, 2 and 4 worker
processes, against the same full resync unsplit in one task (``resync_model``): wall time from
queuing to the merged ``SyncState``, records per second, and the speed-up over the unsplit run.

Workers are real ``celery -A core worker`` processes (the solo pool, one task at a time each)
on the benchmarks' throwaway database; the simulator runs in a process of its own (one
process, serving every worker: on a small machine it is the ceiling). On SQLite every worker
waits for the one write lock; on PostgreSQL they write side by side.

``python -m benchmarks --only partitions`` (``--quick``: 3,000 records, pages of 500), on the
benchmarks' throwaway database (``benchmarks.orm``); ``BENCHMARK_ARGS`` cannot reach its own
options, which ``main(argv)`` takes."""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from django.apps import apps
from django.conf import settings
from django.test.utils import override_settings

from cdms_api.simulator.testing import SimulatorHandle, simulator_process
from core.workers import worker_process
from migrator import remote
from migrator.state import SyncState
from migrator.tasks import resync_model, resync_partitioned

from . import data

QUICK = ["--records", "3000", "--page-size", "500"]
LABEL = "core.Organisation"
FIRST = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--ranges", type=int, default=8, help="ranges of createdon")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--redis-url", default=None, help="default: the Celery broker")
    return parser.parse_args(argv)


def migrated(count: int) -> list[dict]:
    """Accounts created a minute apart (``overriddencreatedon``), as a migrated table is."""
    return [
        {**record, "overriddencreatedon": (FIRST + dt.timedelta(minutes=i)).isoformat()}
        for i, record in enumerate(data.accounts(count, group=1))
    ]


@contextmanager
def workers(count: int, queue: str, redis_url: str, scratch: Path) -> Iterator[None]:
    """``count`` worker processes on ``queue``, each ready before this returns."""
    with ExitStack() as stack:
        logs = [scratch / f"{queue}-{n}.log" for n in range(count)]
        for log in logs:
            stack.enter_context(worker_process(queue, log.open("w"), redis_url, settings.CDMS))
        deadline = time.monotonic() + 120
        while not all(" ready." in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the workers did not start: see {scratch}")
            time.sleep(0.1)
        yield


def timed_run(task, args: tuple, count: int, redis_url: str, scratch: Path) -> float:
    """Seconds from queuing ``task`` to the model's resync ending in step, on ``count``
    fresh workers, from an empty local table."""
    model = apps.get_model(LABEL)
    model.objects.skip_cdms().all().delete()
    SyncState.objects.all().delete()
    queue = f"cdms-benchmark-{uuid.uuid4().hex[:12]}"
    state = SyncState.objects.filter(model=LABEL, status=SyncState.Status.OK)
    with workers(count, queue, redis_url, scratch):
        started = time.perf_counter()
        task.apply_async(args, queue=queue)
        while not state.exists():
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    assert model.objects.skip_cdms().count() == SyncState.objects.get(model=LABEL).created
    return seconds


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    redis_url = args.redis_url or settings.CELERY_BROKER_URL
    figures: dict = {"records": args.records, "ranges": args.ranges, "runs": []}
    with simulator_process("none") as simulator, TemporaryDirectory() as scratch:
        data.load(simulator, migrated(args.records))
        with override_settings(CDMS=cdms_settings(simulator, args, redis_url), DEBUG=False):
            remote.reset()
            unsplit = timed_run(resync_model, (LABEL, True), 1, redis_url, Path(scratch))
            figures["runs"].append({"workers": 1, "ranges": 1, "seconds": unsplit})
            for count in args.workers:
                seconds = timed_run(
                    resync_partitioned, (LABEL, args.ranges), count, redis_url, Path(scratch)
                )
                figures["runs"].append(
                    {"workers": count, "ranges": args.ranges, "seconds": seconds}
                )
            remote.reset()
    report(figures, args)
    return figures


def cdms_settings(simulator: SimulatorHandle, args: argparse.Namespace, redis_url: str) -> dict:
    return simulator.client_settings(
        PAGE_SIZE=args.page_size,
        LOCK_URL=redis_url,
        LOCK_PREFIX=f"cdms-benchmark:{uuid.uuid4().hex}:",
        RESYNC_LOCK_TTL_S=30,
    )


def report(figures: dict, args: argparse.Namespace) -> None:
    records = figures["records"]
    print(
        f"partitions: a full resync of {records:,} records, pages of {args.page_size}, "
        f"on Celery workers"
    )
    print(f"  {'':<26}{'seconds':>9}{'records/s':>11}{'speed-up':>10}")
    base = figures["runs"][0]["seconds"]
    for run in figures["runs"]:
        name = (
            "unsplit, 1 worker"
            if run["ranges"] == 1
            else f"{run['ranges']} ranges, {run['workers']} worker{'s' * (run['workers'] > 1)}"
        )
        print(
            f"  {name:<26}{run['seconds']:>9.2f}{records / run['seconds']:>11,.0f}"
            f"{base / run['seconds']:>9.2f}x"
        )
