"""Many processes, one CRM user: 8 processes -- 7 web-like (reads by filter and by key, some
updates) and a resync reading pages in the background -- against the simulator enforcing
service protection limits scaled down from Dataverse's (by default 600 requests and 120 s of
execution per 30 s window, 8 at once), with and without the Redis governor.

For each: the 429s received, the operations completed per second, the requests served per
second once the first window has passed (an empty window lets a burst through) against the
budget's rate, the web operations' p50/p99 latency (waits and retries included) and the
resync's pages per second. What a careful engineer does by hand is the run without the
governor: each process honours ``Retry-After`` on its own (the client's retry policy), unaware
of the others. Goal: no 429 with the governor, and the budget used to 90 % or more.

``python -m benchmarks --only governor`` (``--quick``: 100 requests per 5 s, 4 at once, 15 s a
run); ``python -m benchmarks.governor --help`` for the knobs."""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import random
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from cdms_api.client import CDMSClient
from cdms_api.errors import CDMSError
from cdms_api.governor import Limits, background
from cdms_api.retry import RetryPolicy
from cdms_api.shared import RedisGovernor, RedisTokenCache
from cdms_api.simulator.testing import SimulatorHandle, simulator_process

from . import data

PROCESSES = 8
GROUPS = 20  # the web processes read one of these groups of accounts at a time
#: --quick: a smaller budget and window, a shorter run
QUICK = ["--requests", "100", "--window", "5", "--execution", "20", "--concurrency", "4"]
QUICK += ["--seconds", "15", "--records", "400"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.governor", description=__doc__)
    parser.add_argument("--requests", type=int, default=600, help="requests per window")
    parser.add_argument("--window", type=float, default=30, help="the window, in seconds")
    parser.add_argument("--execution", type=float, default=120, help="execution s per window")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once")
    parser.add_argument(
        "--seconds", type=float, default=90, help="how long each run lasts (more than a window)"
    )
    parser.add_argument("--records", type=int, default=2000, help="accounts in the simulator")
    parser.add_argument("--redis-url", default=None, help="default: the Celery broker")
    return parser.parse_args(argv)


@dataclass
class Tally:
    """What one process did."""

    role: str
    latencies: list[float] = field(default_factory=list)
    throttled: int = 0
    failed: int = 0


def work(
    role: str,
    simulator_root: str,
    redis_url: str,
    user: str | None,
    limits: Limits,
    seconds: float,
    start: Any,
    results: Any,
) -> None:
    """One process: operations until ``seconds`` have passed since the common start."""
    logging.getLogger("cdms_api").setLevel(logging.ERROR)  # the retries' warnings: counted
    simulator = SimulatorHandle(simulator_root)
    client = CDMSClient(
        simulator.base_url,
        token_url=simulator.token_url,
        client_id=simulator.client_id,
        client_secret=simulator.client_secret,
        token_cache=RedisTokenCache(redis_url, prefix=f"cdms-benchmark:{uuid.uuid4().hex}:"),
        governor=None if user is None else RedisGovernor(redis_url, user, limits),
        retry=RetryPolicy(attempts=10, budget_s=seconds * 4),
        page_size=50,
    )
    tally = Tally(role)
    client.session.listeners.append(
        lambda record: setattr(tally, "throttled", tally.throttled + (record.status == 429))
    )
    client.session.auth.authorization(client.session.timeout)  # the token, before the clock
    keys = [r["accountid"] for r in client.iter("accounts", select=["accountid"], top=200)]
    start.wait()
    deadline = time.monotonic() + seconds
    chooser = random.Random(role)
    operations = resync_pages(client) if role == "resync" else None
    while time.monotonic() < deadline:
        began = time.monotonic()
        try:
            if operations is not None:
                with background():
                    next(operations)
            else:
                web_operation(client, chooser, keys)
        except CDMSError:
            tally.failed += 1
            continue
        if time.monotonic() <= deadline:
            tally.latencies.append(time.monotonic() - began)
    client.close()
    results.put(tally)


def web_operation(client: CDMSClient, chooser: random.Random, keys: list[str]) -> None:
    """A web request's remote call: 70 % a filtered read, 20 % a read by key, 10 % an update."""
    draw = chooser.random()
    if draw < 0.7:
        group = chooser.randrange(GROUPS)
        list(client.iter("accounts", filter=f"numberofemployees eq {group}", top=10))
    elif draw < 0.9:
        client.get("accounts", chooser.choice(keys), select=["name"])
    else:
        client.update("accounts", chooser.choice(keys), {"telephone1": f"{chooser.random():.6f}"})


def resync_pages(client: CDMSClient):
    """A resync's reads: the whole set, a page per request, over and over."""
    while True:
        for _page in client.pages("accounts", select=["name", "numberofemployees"]):
            yield


def run(simulator: SimulatorHandle, args: argparse.Namespace, governed: bool) -> dict:
    simulator.reset()  # an empty window: the limits the simulator was started with
    data.load(simulator, data.accounts(args.records, group=0))
    redis_url = args.redis_url or settings.CELERY_BROKER_URL
    limits = Limits(args.requests, args.window, args.execution, args.concurrency)
    user = f"benchmark-{uuid.uuid4().hex}" if governed else None
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES + 1), context.Queue()
    roles = [f"web-{n}" for n in range(PROCESSES - 1)] + ["resync"]
    processes = [
        context.Process(
            target=work,
            args=(role, simulator.root_url, redis_url, user, limits, args.seconds, start, results),
        )
        for role in roles
    ]
    for process in processes:
        process.start()
    start.wait()
    started = time.time()
    simulator.clear_journal()
    tallies = [results.get(timeout=args.seconds * 6 + 60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    # the budget used once the first window has passed (an empty window lets a burst through)
    steady_from, steady_s = started + args.window, args.seconds - args.window
    served = [
        e
        for e in simulator.journal()
        if e["path"].startswith("/api/") and e["status"] < 400 and e["time"] >= steady_from
    ]
    web = sorted(x for t in tallies if t.role != "resync" for x in t.latencies)
    resync = next(t for t in tallies if t.role == "resync")
    return {
        "governor": governed,
        "throttled": sum(t.throttled for t in tallies),
        "failed": sum(t.failed for t in tallies),
        "operations_per_s": (len(web) + len(resync.latencies)) / args.seconds,
        "requests_per_s": len(served) / steady_s,
        "budget_per_s": args.requests / args.window,
        "web_p50_ms": percentile(web, 50) * 1000,
        "web_p99_ms": percentile(web, 99) * 1000,
        "resync_pages_per_s": len(resync.latencies) / args.seconds,
    }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def main(argv: list[str] | None = None) -> dict:
    args = arguments(argv)
    options = ["--limit-requests", str(args.requests), "--limit-window", str(args.window)]
    options += ["--limit-execution", str(args.execution)]
    options += ["--limit-concurrency", str(args.concurrency)]
    with simulator_process("none", *options) as simulator:
        figures = [run(simulator, args, governed) for governed in (False, True)]
    report(figures, args)
    return {"arguments": vars(args), "runs": figures}


def report(figures: list[dict], args: argparse.Namespace) -> None:
    print(
        f"governor: {PROCESSES} processes ({PROCESSES - 1} web, 1 resync), {args.seconds:g} s "
        f"each run; limits {args.requests} requests and {args.execution:g} s of execution per "
        f"{args.window:g} s, {args.concurrency} at once"
    )
    print(
        f"  {'':<17}{'429s':>6}{'failed':>8}{'ops/s':>8}{'req/s':>8}{'budget':>8}"
        f"{'web p50':>10}{'web p99':>10}{'resync pages/s':>16}"
    )
    for f in figures:
        name = "with governor" if f["governor"] else "without governor"
        print(
            f"  {name:<17}{f['throttled']:>6}{f['failed']:>8}{f['operations_per_s']:>8.1f}"
            f"{f['requests_per_s']:>8.1f}{f['requests_per_s'] / f['budget_per_s']:>8.0%}"
            f"{f['web_p50_ms']:>8.0f}ms{f['web_p99_ms']:>8.0f}ms{f['resync_pages_per_s']:>16.2f}"
        )


if __name__ == "__main__":
    main()
