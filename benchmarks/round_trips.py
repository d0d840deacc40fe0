"""Round trips per ORM operation: the remote requests each makes (and which), the records its
reads bring, and its local queries, on the example models, against the target the project
sets for it. Counts, not timings: each operation runs once, after its data is in place.

A target missed is shown as missed, with the reason in the table's notes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

import migrator
from cdms_api.client import BULK_ACTION
from cdms_api.keys import bind
from cdms_api.simulator.app import API_PREFIX
from core.models import Contact, Organisation
from migrator import remote

from . import data
from .orm import Environment

BENCHMARK = "round_trips"
#: the sizes the targets are set for; quick mode (CI) counts a fifth of them
SIZES = {"bulk": 1000, "update": 500, "related": 200}
#: groups of accounts of their own (their numberofemployees), apart from the other benchmarks'
FIRST_GROUP = 7001


@dataclass
class Trip:
    """One operation's round trips, and whether they meet its target."""

    operation: str
    target: str
    requests: list[str]
    records: int
    queries: int
    met: bool
    note: str = ""

    @property
    def writes(self) -> int:
        return sum(1 for r in self.requests if not r.startswith("GET"))


@dataclass
class Operations:
    """Each operation's data, made before it is counted (nothing of it counted)."""

    env: Environment
    group: int = FIRST_GROUP
    trips: list[Trip] = field(default_factory=list)

    def accounts(self, count: int) -> int:
        """``count`` accounts of a new group, synced locally; the group's number."""
        self.group += 1
        data.load(self.env.simulator, data.accounts(count, self.group))
        list(Organisation.objects.filter(employees=self.group))
        return self.group

    def contacts(self, group: int, each: int = 1) -> None:
        """``each`` contacts for every account of the group, created remotely only."""
        records = [
            {
                "lastname": f"Contact {group}-{i}-{n}",
                "parentcustomerid_account@odata.bind": bind("accounts", org.cdms_pk),
            }
            for i, org in enumerate(Organisation.objects.skip_cdms().filter(employees=group))
            for n in range(each)
        ]
        self.env.simulator.load("contacts", records)

    def count(
        self,
        operation: str,
        action: Callable[[], Any],
        target: str,
        met: Callable[[Trip], bool],
        note: str = "",
    ) -> Trip:
        simulator = self.env.simulator
        simulator.clear_journal()
        with CaptureQueriesContext(connection) as queries:
            action()
        journal = [e for e in simulator.journal() if e["path"].startswith(API_PREFIX)]
        trip = Trip(
            operation,
            target,
            [f"{e['method']} {_resource(e['path'])}" for e in journal],
            sum(e["records"] or 0 for e in journal),
            len(queries),
            False,
            note,
        )
        trip.met = met(trip)
        self.trips.append(trip)
        return trip


def run(env: Environment, quick: bool = False) -> list[Trip]:
    ops = Operations(env)
    client = remote.client()
    client.bulk_messages("accounts")  # read once per client: not the operations' own
    many, half, some = (size // (5 if quick else 1) for size in SIZES.values())

    objs = [Organisation(name=f"Round trip {i}", employees=ops.group) for i in range(many)]
    ops.count(
        f"bulk_create() of {many:,}",
        lambda: Organisation.objects.bulk_create(objs),
        "1 request",
        lambda t: len(t.requests) == 1,
        "CreateMultiple answers keys only: the records are read back for their ETags (in one "
        "request: a plain read, or a $batch of reads when the keys are too long for a URL)",
    )
    objs = [Organisation(name=f"Round trip atomic {i}") for i in range(many)]
    ops.count(
        f"bulk_create(atomic=True) of {many:,}",
        lambda: Organisation.objects.bulk_create(objs, atomic=True),
        "1 request",
        lambda t: len(t.requests) == 1,
    )

    group = ops.accounts(half)
    ops.count(
        f"filter().update() over {half}",
        lambda: Organisation.objects.filter(employees=group).update(revenue=F("revenue") + 1),
        "1 read + 1 write",
        lambda t: t.requests == ["GET accounts", "POST $batch"],
    )
    objs = list(Organisation.objects.skip_cdms().filter(employees=group))
    for obj in objs:
        obj.website = f"https://updated.example/{obj.pk}"
    ops.count(
        f"bulk_update() of {half}",
        lambda: Organisation.objects.bulk_update(objs, ["website"]),
        "1 write",
        lambda t: t.requests == ["POST $batch"],
    )
    ops.count(
        f"filter().delete() over {half}",
        lambda: Organisation.objects.filter(employees=group).delete(),
        "1 read + 1 write",
        lambda t: t.requests == ["GET accounts", "POST $batch"],
    )

    group = ops.accounts(some)
    ops.contacts(group)
    ops.count(
        f"select_related() over {some} contacts",
        lambda: [
            c.organisation.name
            for c in Contact.objects.select_related("organisation").filter(
                last_name__startswith=f"Contact {group}-"
            )
        ],
        "1 request",
        lambda t: len(t.requests) == 1,
    )
    group = ops.accounts(some)
    ops.contacts(group)
    ops.count(
        f"prefetch_related() of {some} organisations' contacts",
        lambda: [
            len(o.contacts.all())
            for o in Organisation.objects.filter(employees=group).prefetch_related("contacts")
        ],
        "at most 2 requests",
        lambda t: len(t.requests) <= 2,
    )
    ops.count(
        "[:10]",
        lambda: list(Organisation.objects.filter(employees=group)[:10]),
        "1 req, ≤ 20 records",
        lambda t: len(t.requests) == 1 and t.records <= 20,
        "the top 10 and the 10 stored rows the answer can depend on, re-checked by key, in "
        "one $batch",
    )
    ops.count(
        f"count() over {some}",
        lambda: Organisation.objects.filter(employees=group).count(),
        "1 req, ≤ 1 record",
        lambda t: len(t.requests) == 1 and t.records <= 1,
    )

    group = ops.accounts(50)
    objs = list(Organisation.objects.skip_cdms().filter(employees=group))

    def saves() -> None:
        with migrator.atomic():
            for obj in objs:
                obj.phone = "+44 20 7946 0001"
                obj.save()

    ops.count(
        "migrator.atomic() of 50 saves",
        saves,
        "1 write request",
        lambda t: t.requests == ["POST $batch"],
    )

    def one_by_one() -> None:
        for obj in objs:
            obj.phone = "+44 20 7946 0002"
            obj.save()

    ops.count("50 saves, no block", one_by_one, "(for comparison)", lambda t: True)
    org = objs[0]
    contacts = list(Contact.objects.filter(last_name__startswith=f"Contact {group - 1}-")[:50])
    ops.count(
        f"org.contacts.add() of {len(contacts)}",
        lambda: org.contacts.add(*contacts),
        "1 read + 1 write",
        lambda t: t.requests == ["GET contacts", "POST $batch"],
    )
    ops.count(
        "get_or_create() of a new record",
        lambda: Organisation.objects.get_or_create(name="Round trip new", employees=ops.group),
        "1 read + 1 write",
        lambda t: len(t.requests) == 2 and t.writes == 1,
    )
    return ops.trips


def table(trips: list[Trip], out: TextIO) -> None:
    print(
        f"{'operation':<52} {'target':<20} {'met':<4} {'requests':>8} {'records':>8} "
        f"{'queries':>7}  requests made",
        file=out,
    )
    for trip in trips:
        made = ", ".join(_grouped(trip.requests))
        print(
            f"{trip.operation:<52} {trip.target:<20} {'yes' if trip.met else 'NO':<4} "
            f"{len(trip.requests):>8} {trip.records:>8,} {trip.queries:>7}  {made}",
            file=out,
        )
    for trip in trips:
        if trip.note and not trip.met:
            print(f"  {trip.operation}: {trip.note}", file=out)


def _resource(path: str) -> str:
    """``/api/data/v9.2/accounts(<key>)`` -> ``accounts``; actions by their own name."""
    return path[len(API_PREFIX) :].split("(")[0].replace(BULK_ACTION, "")


def _grouped(requests: list[str]) -> list[str]:
    """``["GET a", "GET a", "POST b"]`` -> ``["2 x GET a", "POST b"]``, in order."""
    grouped: list[list] = []
    for request in requests:
        if grouped and grouped[-1][1] == request:
            grouped[-1][0] += 1
        else:
            grouped.append([1, request])
    return [request if n == 1 else f"{n} x {request}" for n, request in grouped]


def as_json(trips: list[Trip]) -> list[dict[str, Any]]:
    return [{**asdict(trip), "writes": trip.writes} for trip in trips]
