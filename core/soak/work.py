"""The soak's ORM work: one thread's mixed operations on records of its own, and the ledger of
what each record may hold remotely after them.

A record's ledger entry is the set of remote states it may be in: ``None`` (no record) or its
``employees``. An acknowledged write leaves one state; a write that raised leaves the state
before it, or, when the error is ``ambiguous``, either that or the state after it."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection

import migrator
from cdms_api.errors import BulkWriteError, CDMSError
from core.models import Organisation

KINDS = ("create", "update", "delete", "filter", "get", "bulk_create", "bulk_update", "atomic")
WEIGHTS = (22, 18, 8, 14, 12, 8, 8, 10)

State = int | None  # a record's employees, None: no record


@dataclass
class Tally:
    """What a thread (or, added up, a process or the whole soak) did and saw."""

    operations: Counter = field(default_factory=Counter)  # "<kind> ok" / "<kind> raised"
    errors: Counter = field(default_factory=Counter)  # by type
    untyped: list[str] = field(default_factory=list)  # an error not a CDMSError, or a wrong read
    longest_s: float = 0.0
    ledger: dict[str, list[State]] = field(default_factory=dict)
    retries: int = 0  # attempts the client made again

    def add(self, other: Tally) -> None:
        self.operations.update(other.operations)
        self.errors.update(other.errors)
        self.untyped.extend(other.untyped)
        self.longest_s = max(self.longest_s, other.longest_s)
        self.ledger.update(other.ledger)
        self.retries += other.retries

    def as_dict(self) -> dict:
        return {
            "operations": dict(self.operations),
            "errors": dict(self.errors),
            "untyped": self.untyped,
            "longest_s": self.longest_s,
            "ledger": self.ledger,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Tally:
        return cls(
            Counter(data["operations"]),
            Counter(data["errors"]),
            data["untyped"],
            data["longest_s"],
            data["ledger"],
            data.get("retries", 0),
        )


class Worker:
    """One thread's operations on the records named ``<prefix>-<n>``."""

    def __init__(self, prefix: str, seed: int):
        self.prefix, self.rng, self.tally = prefix, random.Random(seed), Tally()
        self.count = 0

    @property
    def ledger(self) -> dict[str, list[State]]:
        return self.tally.ledger

    def run(self, operations: int) -> Tally:
        try:
            for _ in range(operations):
                kind = self.rng.choices(KINDS, WEIGHTS)[0]
                self.once(kind, getattr(self, kind))
        finally:
            connection.close()
        return self.tally

    def once(self, kind: str, operation: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            operation()
            self.tally.operations[f"{kind} ok"] += 1
        except CDMSError as error:
            self.tally.operations[f"{kind} raised"] += 1
            self.tally.errors[type(error).__name__] += 1
        except Exception as error:
            self.tally.operations[f"{kind} raised"] += 1
            self.tally.untyped.append(f"{kind}: {type(error).__name__}: {error}")
        finally:
            self.tally.longest_s = max(self.tally.longest_s, time.monotonic() - started)

    # the ledger ------------------------------------------------------------------------------
    def new_name(self) -> str:
        self.count += 1
        return f"{self.prefix}-{self.count}"

    def certain(self) -> list[str]:
        """Names of records surely present, with one known value."""
        return [
            n for n, states in self.ledger.items() if len(states) == 1 and states[0] is not None
        ]

    def pick(self, k: int = 1) -> list[str]:
        known = self.certain()
        return self.rng.sample(known, min(k, len(known)))

    def wrote(self, changes: dict[str, State], error: CDMSError | None) -> None:
        """Note writes of ``changes`` (name -> state after) that were acknowledged (no error)
        or raised ``error``."""
        for name, after in changes.items():
            before = self.ledger.get(name, [None])
            if error is None:
                self.ledger[name] = [after]
            elif error.ambiguous:
                self.ledger[name] = sorted(set(before) | {after}, key=str)
            else:
                self.ledger[name] = before

    def writing(self, changes: dict[str, State], write: Callable[[], None]) -> None:
        try:
            write()
        except BulkWriteError as error:
            # each write as its part of the error says
            for obj in error.done:
                self.wrote({obj.name: changes[obj.name]}, None)
            for obj, failure in error.failed:
                self.wrote({obj.name: changes[obj.name]}, failure)
            raise
        except CDMSError as error:
            self.wrote(changes, error)
            raise
        self.wrote(changes, None)

    # the operations --------------------------------------------------------------------------
    def create(self) -> None:
        name, employees = self.new_name(), self.rng.randrange(1, 10_000)
        org = Organisation(name=name, employees=employees)
        self.writing({name: employees}, org.save)

    def update(self) -> None:
        for name in self.pick():
            org = self.read(name)
            org.employees = self.rng.randrange(1, 10_000)
            self.writing({name: org.employees}, org.save)

    def delete(self) -> None:
        for name in self.pick():
            org = self.read(name)
            self.writing({name: None}, org.delete)

    def filter(self) -> None:
        low = self.rng.randrange(1, 10_000)
        rows = Organisation.objects.filter(name__startswith=f"{self.prefix}-", employees__gte=low)
        for row in rows:
            states = self.ledger.get(row.name, [])
            if len(states) == 1 and row.employees != states[0]:
                self.tally.untyped.append(f"filter read {row.name}: {row.employees}, {states}")

    def get(self) -> None:
        for name in self.pick():
            self.read(name)

    def bulk_create(self) -> None:
        orgs = [
            Organisation(name=self.new_name(), employees=self.rng.randrange(1, 10_000))
            for _ in range(self.rng.randrange(2, 6))
        ]
        changes = {org.name: org.employees for org in orgs}
        self.writing(changes, lambda: Organisation.objects.bulk_create(orgs))

    def bulk_update(self) -> None:
        names = self.pick(3)
        if not names:
            return
        employees = self.rng.randrange(1, 10_000)
        changes = dict.fromkeys(names, employees)
        query = Organisation.objects.filter(name__in=names)
        self.writing(changes, lambda: query.update(employees=employees))

    def atomic(self) -> None:
        changes: dict[str, State] = {}
        updated = self.pick()

        def block() -> None:
            with migrator.atomic():
                for _ in range(2):
                    org = Organisation.objects.create(
                        name=self.new_name(), employees=self.rng.randrange(1, 10_000)
                    )
                    changes[org.name] = org.employees
                for name in updated:
                    org = Organisation.objects.get(name=name)
                    org.employees = self.rng.randrange(1, 10_000)
                    org.save()
                    changes[name] = org.employees

        try:
            block()
        except CDMSError as error:
            self.wrote(changes, error)  # all or nothing
            raise
        self.wrote(changes, None)

    def read(self, name: str) -> Organisation:
        """The record as the ORM reads it; a read disagreeing with the ledger is noted (one
        that finds no record raises ``DoesNotExist``, noted as an untyped error)."""
        [expected] = self.ledger[name]
        org = Organisation.objects.get(name=name)
        if org.employees != expected:
            self.tally.untyped.append(f"get {name}: {org.employees}, {expected} expected")
        return org


def work(prefix: str, threads: int, operations: int, seed: int) -> Tally:
    """``operations`` split across ``threads`` threads of this process; their tallies added."""
    workers = [Worker(f"{prefix}t{i}", seed * 1000 + i) for i in range(threads)]
    share = [operations // threads + (i < operations % threads) for i in range(threads)]
    running = [
        threading.Thread(target=w.run, args=(n,), daemon=True)
        for w, n in zip(workers, share, strict=True)
    ]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()
    total = Tally()
    for worker in workers:
        total.add(worker.tally)
    return total
