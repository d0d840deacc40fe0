"""The soak's run: ORM work from threads in several processes against the simulator, faults
injected on a share of every request, an incremental resync alongside; then the checks.

1. every operation succeeded or raised a typed error (``CDMSError``), and no read disagreed
   with what the thread had written; none took longer than ``HUNG_S``;
2. after one incremental resync, ``migrator.verify`` finds no drift;
3. no name exists twice remotely; every record is as its thread's ledger allows: what was
   acknowledged, or, after an error, what the error said (``ambiguous`` or not).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import connection
from django.test.utils import override_settings

from cdms_api import odata
from cdms_api.client import CDMSClient
from cdms_api.errors import CDMSError
from cdms_api.session import RequestRecord
from cdms_api.simulator.testing import SimulatorHandle
from core.models import Organisation
from core.workers import child_environment
from migrator import remote
from migrator.resync import resync
from migrator.verify import verify

from .work import KINDS, Tally

READ_TIMEOUT_S = 0.5
RETRY = {"attempts": 5, "backoff_s": 0.05, "budget_s": 10}
HUNG_S = 3 * RETRY["budget_s"]  # an operation makes a few requests, each within the budget
FAULTS = {
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "429": {"status": 429, "headers": {"Retry-After": "1"}},
    "drop": {"action": "drop"},
    "slow": {"action": "pass", "delay_ms": int(READ_TIMEOUT_S * 1000) + 300},
    "apply_then_fail": {"action": "apply_then_fail", "status": 503},
}
PREFIX = "soak"


@dataclass
class Result:
    operations: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    resync_errors: dict[str, int] = field(default_factory=dict)
    untyped: list[str] = field(default_factory=list)
    longest_s: float = 0.0
    hung: list[str] = field(default_factory=list)
    drift: int = 0
    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # acknowledged writes not as written
    unexplained: list[str] = field(default_factory=list)  # raised writes not as their error said
    seconds: float = 0.0

    def problems(self) -> list[str]:
        found = {
            "untyped errors or wrong reads": self.untyped,
            "hung": self.hung,
            "duplicates": self.duplicates,
            "lost writes": self.lost,
            "writes not as their error said": self.unexplained,
        }
        problems = [f"{what}: {items[:10]}" for what, items in found.items() if items]
        if self.drift:
            problems.append(f"drift after one incremental resync: {self.drift}")
        return problems

    def as_dict(self) -> dict:
        return {**asdict(self), "problems": self.problems()}

    def table(self) -> str:
        lines = [f"{'operation':<14}{'ok':>8}{'raised':>8}"]
        for kind in KINDS:
            ok, raised = (
                self.operations.get(f"{kind} ok", 0),
                self.operations.get(f"{kind} raised", 0),
            )
            lines.append(f"{kind:<14}{ok:>8}{raised:>8}")
        total = sum(self.operations.values())
        faulted = sum(self.faults.values())
        share = faulted / self.requests if self.requests else 0
        lines += [
            f"{'total':<14}{total:>16}",
            "",
            f"requests: {self.requests}, faults injected: {faulted} ({share:.0%})",
            *(f"  {kind:<24}{n:>6}" for kind, n in sorted(self.faults.items())),
            f"retries: {self.retries}",
            "errors raised, by type:",
            *(f"  {kind:<24}{n:>6}" for kind, n in sorted(self.errors.items())),
            "resync errors (retried by the next run), by type:",
            *(f"  {kind:<24}{n:>6}" for kind, n in sorted(self.resync_errors.items())),
            f"untyped errors or wrong reads: {len(self.untyped)}",
            f"longest operation: {self.longest_s:.1f} s; hung (over {HUNG_S} s): {len(self.hung)}",
            f"drift after one incremental resync: {self.drift}",
            f"duplicate records: {len(self.duplicates)}",
            f"lost writes: {len(self.lost)}",
            f"writes not as their error said: {len(self.unexplained)}",
            f"in {self.seconds:.0f} s: {'PASSED' if not self.problems() else 'FAILED'}",
        ]
        return "\n".join(lines)


def fault_rules(share: float) -> list[dict]:
    """One rule per kind of fault, each taking its part of every API request, so that
    ``share`` of them meet one."""
    chance = 1 - (1 - share) ** (1 / len(FAULTS))
    return [
        {"path": "^/api/data/", "method": "*", "times": None, "chance": chance, **rule}
        for rule in FAULTS.values()
    ]


def run(
    simulator: SimulatorHandle,
    operations: int = 2000,
    processes: int = 2,
    threads: int = 4,
    share: float = 0.2,
    seed: int = 1,
) -> Result:
    """The soak against ``simulator``, on the default database (migrated, its tables of the
    example app empty)."""
    started = time.monotonic()
    cdms = simulator.client_settings(
        RETRY=RETRY, TIMEOUT=[5.0, READ_TIMEOUT_S], LOCK_URL="memory://", PAGE_SIZE=200
    )
    result, tally = Result(), Tally()
    with override_settings(CDMS=cdms):
        resync(Organisation, full=True)
        simulator.clear_journal()
        simulator.add_faults(*fault_rules(share))
        retries = count_retries()
        stop = threading.Event()
        alongside = threading.Thread(target=resync_until, args=(stop, result), daemon=True)
        alongside.start()
        try:
            children = [
                spawn(cdms, f"{PREFIX}-p{i}", threads, operations // processes, seed + i)
                for i in range(processes)
            ]
            for i, child in enumerate(children):
                tally.add(collect(child, f"process {i}", result))
        finally:
            stop.set()
            alongside.join()
            simulator.clear_faults()
            time.sleep(READ_TIMEOUT_S + 0.5)  # requests given up on are still being served
        journal = simulator.journal()
        result.retries = retries() + tally.retries
        resync(Organisation)
        result.drift = verify(Organisation).drift
    result.operations, result.errors = dict(tally.operations), dict(tally.errors)
    result.untyped, result.longest_s = tally.untyped, tally.longest_s
    result.hung += (
        [f"an operation took {tally.longest_s:.1f} s"] if tally.longest_s > HUNG_S else []
    )
    result.requests = sum(1 for e in journal if e["path"].startswith("/api/data/"))
    result.faults = dict(Counter(e["fault"] for e in journal if e["fault"]))
    check_remote(simulator, tally.ledger, result)
    result.seconds = time.monotonic() - started
    return result


def count_retries():
    """Count the project's client's retried attempts from now on; returns the counter."""
    seen = Counter()

    def listen(record: RequestRecord) -> None:
        if record.attempt > 1:
            seen["retries"] += 1

    remote.client().session.listeners.append(listen)
    return lambda: seen["retries"]


def resync_until(stop: threading.Event, result: Result) -> None:
    """Incremental resyncs one after the other until ``stop``; their errors are counted (the
    next run goes on from the checkpoint)."""
    errors = Counter()
    try:
        while not stop.wait(0.2):
            try:
                resync(Organisation)
            except CDMSError as error:
                errors[type(error).__name__] += 1
            except Exception as error:
                result.untyped.append(f"resync: {type(error).__name__}: {error}")
    finally:
        connection.close()
        result.resync_errors = dict(errors)


def spawn(cdms: dict, prefix: str, threads: int, operations: int, seed: int) -> subprocess.Popen:
    """A process of ``threads`` threads working on this process's database (``python -m
    core.soak``); its tally comes back as JSON on its standard output."""
    spec = {"prefix": prefix, "threads": threads, "operations": operations, "seed": seed}
    return subprocess.Popen(
        [sys.executable, "-m", "core.soak", json.dumps(spec)],
        cwd=settings.BASE_DIR,
        env=child_environment(cdms, "memory://", "soak"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,  # its log: the tail is kept when it fails
        text=True,
    )


def collect(child: subprocess.Popen, name: str, result: Result) -> Tally:
    try:
        out, log = child.communicate(timeout=max(600, HUNG_S * 20))
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        result.hung.append(f"{name} did not finish")
        return Tally()
    if child.returncode != 0:
        result.untyped.append(f"{name} ended with status {child.returncode}: {log[-2000:]}")
        return Tally()
    return Tally.from_dict(json.loads(out))


def check_remote(simulator: SimulatorHandle, ledger: dict[str, list], result: Result) -> None:
    """Every soak record as its ledger allows; no name twice; no record no thread wrote."""
    client = CDMSClient.from_settings(simulator.client_settings())
    try:
        records = list(
            client.iter(
                "accounts",
                filter=odata.Prop("name").startswith(f"{PREFIX}-"),
                select=["name", "numberofemployees"],
            )
        )
    finally:
        client.close()
    names = Counter(r["name"] for r in records)
    result.duplicates = sorted(n for n, times in names.items() if times > 1)
    held = {r["name"]: r["numberofemployees"] for r in records}
    for name, states in ledger.items():
        state = held.pop(name, None)
        if state not in states:
            failed = result.lost if len(states) == 1 else result.unexplained
            failed.append(f"{name}: {state} remotely, {states} allowed")
    result.unexplained += [f"{name}: written by no thread" for name in held]
