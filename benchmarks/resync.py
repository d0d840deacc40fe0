"""Resync figures: a full resync of 10,000 and of 50,000 records (records/s, against a page
loop with one bulk upsert per page written by hand; peak memory, measured in a pass of its
own, which must not grow with the count), and an incremental resync of 10 changes over
50,000 records against the full one (requests and time, as a ratio).

The simulator runs in a process of its own, so that neither its CPU time nor its memory
counts. Run by ``python -m benchmarks --only resync`` on the benchmarks' throwaway database
(``benchmarks.orm``); the test suite runs it small."""

from __future__ import annotations

import argparse
import time
import tracemalloc
import uuid
from collections.abc import Callable

from django.apps import apps
from django.conf import settings
from django.test.utils import override_settings

from cdms_api.client import CDMSClient
from cdms_api.simulator.testing import SimulatorHandle, simulator_process
from migrator import remote
from migrator.resync import resync
from migrator.state import SyncState

from . import data


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--list-size", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument(
        "--lock-url", default=None, help="Redis for the resync lock (default: the broker)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    organisation = apps.get_model("core", "Organisation")
    figures: dict = {"sizes": {}}
    with simulator_process(seed="none") as simulator:
        cdms = simulator.client_settings(
            PAGE_SIZE=args.page_size,
            LOCK_URL=args.lock_url or settings.CELERY_BROKER_URL,
            LOCK_PREFIX=f"cdms-benchmark:{uuid.uuid4().hex}:",  # its own simulator, its own lock
        )
        with override_settings(CDMS=cdms, DEBUG=False):
            remote.reset()
            for size in args.sizes:
                simulator.reset()
                data.load(simulator, data.accounts(size, group=1))
                full_s = timed(lambda: resync(organisation, full=True), organisation)
                by_hand_s = timed(lambda: by_hand(simulator, args.page_size), organisation)
                peak = peak_memory(lambda: resync(organisation, full=True), organisation)
                figures["sizes"][size] = {"full_s": full_s, "by_hand_s": by_hand_s, "peak": peak}
            figures["incremental"] = incremental(simulator, organisation, args.changes)
            figures["list_read"] = list_read(simulator, organisation, args.list_size)
            remote.reset()
    report(figures, args)
    return figures


def list_read(simulator: SimulatorHandle, model, size: int, runs: int = 3) -> dict:
    """A warm read of ``size`` rows, nothing changed: backed by the change feed (one delta
    request, answered empty) against filtered (the records read again), median of ``runs``."""
    data.load(simulator, data.accounts(size, group=2))
    resync(model)
    read = model.objects.filter(employees=2)
    figures = {}
    for mode in ("filtered", "changes"):
        model.cdms.reads = mode
        requests: list = []
        remote.client().session.listeners.append(requests.append)
        try:
            assert len(list(read.all())) == size  # warm
            times = []
            for _ in range(runs):
                requests.clear()
                started = time.perf_counter()
                list(read.all())  # a new evaluation each time
                times.append(time.perf_counter() - started)
        finally:
            remote.client().session.listeners.remove(requests.append)
            model.cdms.reads = None
        figures[mode] = {"s": sorted(times)[runs // 2], "requests": len(requests)}
    return figures


def clear(model) -> None:
    model.objects.skip_cdms().all().delete()
    SyncState.objects.all().delete()


def timed(run: Callable[[], object], model) -> float:
    clear(model)
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def peak_memory(run: Callable[[], object], model) -> int:
    clear(model)
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def by_hand(simulator: SimulatorHandle, page_size: int) -> None:
    """What a careful engineer writes without the library: follow the pages, and upsert each
    into the table in one bulk statement (no deletions, no delta link, no checks)."""
    model = apps.get_model("core", "Organisation")
    mapping = model.cdms
    session = simulator.session()
    url = f"{simulator.base_url}accounts?$select={','.join(mapping.select)}"
    fields = ["cdms_etag", *(fm.field.attname for fm in mapping.fields if not fm.is_lookup)]
    while url:
        page = session.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}).json()
        rows = [
            model(
                cdms_pk=record[mapping.key],
                cdms_etag=record["@odata.etag"],
                **{
                    fm.field.attname: fm.to_python(record.get(fm.remote))
                    for fm in mapping.fields
                    if not fm.is_lookup
                },
            )
            for record in page["value"]
        ]
        model.objects.skip_cdms().bulk_create(
            rows, update_conflicts=True, unique_fields=["cdms_pk"], update_fields=fields
        )
        url = page.get("@odata.nextLink")


def incremental(simulator: SimulatorHandle, model, changes: int) -> dict:
    """After a full resync of the last size: ``changes`` records changed remotely, then the
    incremental resync that brings them in, against the full one."""
    clear(model)
    requests: list = []
    listener = requests.append
    remote.client().session.listeners.append(listener)
    started = time.perf_counter()
    resync(model, full=True)
    full_s, full_requests = time.perf_counter() - started, len(requests)
    crm = CDMSClient.from_settings(simulator.client_settings())
    keys = [str(k) for k in model.objects.skip_cdms().values_list("cdms_pk", flat=True)[:changes]]
    for number, key in enumerate(keys):
        crm.update("accounts", key, {"numberofemployees": 100_000 + number})
    crm.close()
    requests.clear()
    started = time.perf_counter()
    outcome = resync(model)
    incremental_s = time.perf_counter() - started
    remote.client().session.listeners.remove(listener)
    assert outcome.kinds == ("incremental",) and outcome.updated == changes, outcome
    return {
        "full_s": full_s,
        "full_requests": full_requests,
        "incremental_s": incremental_s,
        "incremental_requests": len(requests),
    }


def report(figures: dict, args: argparse.Namespace) -> None:
    print(
        f"resync: full resyncs of {' and '.join(map(str, args.sizes))} records, pages of "
        f"{args.page_size}"
    )
    for size, f in figures["sizes"].items():
        print(
            f"  full {size:>7,}: {size / f['full_s']:>8,.0f} records/s "
            f"({f['full_s']:.2f} s; by hand {size / f['by_hand_s']:,.0f} records/s, "
            f"ratio {f['full_s'] / f['by_hand_s']:.2f})  peak memory {f['peak'] / 1e6:.1f} MB"
        )
    sizes = list(figures["sizes"])
    if len(sizes) > 1:
        first, last = figures["sizes"][sizes[0]]["peak"], figures["sizes"][sizes[-1]]["peak"]
        print(f"  peak memory at {sizes[-1]:,} against {sizes[0]:,}: {last / first:.2f}x")
    listed = figures["list_read"]
    print(
        f"  a warm list read of {args.list_size:,} rows: changes-backed "
        f"{listed['changes']['requests']} request(s) in {listed['changes']['s'] * 1000:.0f} ms, "
        f"filtered {listed['filtered']['requests']} request(s) in "
        f"{listed['filtered']['s'] * 1000:.0f} ms; ratio "
        f"{listed['changes']['s'] / listed['filtered']['s']:.2f}"
    )
    inc = figures["incremental"]
    print(
        f"  incremental, {args.changes} changes over {sizes[-1]:,}: "
        f"{inc['incremental_requests']} request(s) in {inc['incremental_s'] * 1000:.0f} ms; "
        f"the full resync: {inc['full_requests']} requests in {inc['full_s']:.2f} s; "
        f"ratio {inc['incremental_s'] / inc['full_s']:.4f}"
    )
