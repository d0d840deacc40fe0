"""The ORM's reads against what a careful engineer writes by hand (``by_hand``), each figure a
ratio measured in the same run, on the database ``DATABASE_URL`` names.

- ``list(filter(...))`` of a group of N matching records: cold (no local rows), warm with
  nothing changed, warm with 10% of the records changed or deleted remotely (5% each). By
  hand: the records paged and upserted (cold, changed), or paged only (warm), then the same
  local query.
- ``first()``, ``exists()``, ``[:10]``, ``earliest()``, ``latest()`` on the same exact filter,
  warm: by hand, one request with ``$top`` (and ``$orderby``), its records upserted, the same
  local query. Their remote requests and records read, at each N, show whether the read grows
  with the matches.
- ``count()``: by hand, one ``$count`` request.
- ``get(pk=...)`` warm, the record unchanged: by hand, one keyed GET; and the same result by
  hand, Django's local query then the keyed GET answered 304.
- ``first()`` of the same queryset with reads backed by the change feed (``CDMS["READS"] =
  "changes"``; the table filled first, untimed): by hand as for ``first()`` above. Filtered
  reads cannot serve an unordered ``first()`` with a few records (it orders by the local
  primary key), the change feed can.

Only the public API is used (the example models, ``skip_cdms()``), so that the figures stay
comparable while the sync engine changes underneath.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.test import override_settings

from core.models import Organisation

from . import by_hand, data
from .by_hand import ByHand
from .measure import Comparison, Plan, Reader, compare, compare_twice
from .orm import Environment

BENCHMARK = "reads"
CHANGED = 0.10  # of a group, changed or deleted remotely: half of it each
SMALL_READS: dict[str, tuple[Callable[[QuerySet], Any], int, str | None]] = {
    # case: (the ORM call, $top, $orderby) -- by hand reads $top records in that order
    "first()": (lambda qs: qs.first(), 1, None),
    "exists()": (lambda qs: qs.exists(), 1, None),
    "[:10]": (lambda qs: list(qs[:10]), 10, None),
    "earliest('revenue')": (lambda qs: qs.earliest("revenue"), 1, "revenue asc"),
    "latest('revenue')": (lambda qs: qs.latest("revenue"), 1, "revenue desc"),
}


class Group:
    """The accounts whose ``numberofemployees`` is ``size``: ``size`` of them remotely, less
    those deleted since the last ``top_up()``."""

    def __init__(self, env: Environment, size: int):
        self.env, self.size = env, size
        self.keys = data.load(env.simulator, data.accounts(size, size))
        self.created = size
        self.random = random.Random(size)
        self.edits = 0

    @property
    def filter(self) -> str:
        return f"numberofemployees eq {self.size}"

    def queryset(self) -> QuerySet:
        return Organisation.objects.filter(employees=self.size)

    def top_up(self) -> None:
        """Create records until the group has ``size`` again."""
        missing = self.size - len(self.keys)
        if missing:
            self.keys += data.load(
                self.env.simulator, data.accounts(missing, self.size, start=self.created)
            )
            self.created += missing

    def sync(self) -> None:
        """Full up again, and the local rows brought up to date (an ORM read)."""
        self.top_up()
        list(self.queryset())

    def change(self) -> None:
        """Change 5% of the records and delete 5%, remotely (another user of the CRM)."""
        chosen = self.random.sample(self.keys, max(2, int(self.size * CHANGED)))
        updated, deleted = chosen[: len(chosen) // 2], chosen[len(chosen) // 2 :]
        self.edits += 1
        self.env.crm.update_multiple(
            "accounts",
            [
                {"accountid": key, "name": f"Changed account {self.edits}-{i}", "revenue": i}
                for i, key in enumerate(updated)
            ],
        )
        with self.env.crm.batch() as batch:
            for key in deleted:
                batch.delete("accounts", key)
        gone = set(deleted)
        self.keys = [key for key in self.keys if key not in gone]

    def clear_local(self) -> None:
        """No local rows for the group (a cold read follows)."""
        field = Organisation._meta.get_field("employees")
        table = connection.ops.quote_name(Organisation._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {connection.ops.quote_name(field.column)} = %s",
                [self.size],
            )


def run(env: Environment, plan: Plan) -> list[Comparison]:
    hand = ByHand(env.simulator)
    groups = [Group(env, size) for size in plan.sizes]
    figures: list[Comparison] = []
    for group in groups:
        figures += list_reads(env, plan, hand, group)
    for group in groups:
        group.sync()
        figures += small_reads(env, plan, hand, group)
    figures.extend(get_by_key(env, plan, hand, groups[0]))
    figures += first_from_the_feed(env, plan, hand, groups)
    return figures


def list_reads(env: Environment, plan: Plan, hand: ByHand, group: Group) -> list[Comparison]:
    def orm() -> list:
        return list(group.queryset())

    def upserted() -> list:
        by_hand.upsert(hand.read(group.filter))
        return by_hand.local(group.queryset())

    def paged() -> list:
        hand.read(group.filter)
        return by_hand.local(group.queryset())

    def changed() -> None:
        group.sync()
        group.change()

    def nothing() -> None:
        pass

    cases = [  # case, before the first run, before each run, the baseline
        ("cold list(filter())", nothing, group.clear_local, upserted),
        ("warm list(filter()), nothing changed", group.sync, nothing, paged),
        ("warm list(filter()), 10% changed or deleted", nothing, changed, upserted),
    ]
    figures = []
    for case, once, each, baseline in cases:
        once()
        readers = [Reader("ORM", orm, each), Reader("by hand", baseline, each)]
        figures.append(compare(BENCHMARK, case, group.size, readers, plan.runs, env.journal))
    return figures


def small_reads(env: Environment, plan: Plan, hand: ByHand, group: Group) -> list[Comparison]:
    figures = []
    for case, (call, top, orderby) in SMALL_READS.items():

        def orm(call=call) -> Any:
            return call(group.queryset())

        def baseline(call=call, top=top, orderby=orderby) -> Any:
            by_hand.upsert(hand.read_top(group.filter, top, orderby))
            return call(group.queryset().skip_cdms())

        readers = [Reader("ORM", orm), Reader("by hand", baseline)]
        figures.append(compare(BENCHMARK, case, group.size, readers, plan.runs, env.journal))
    readers = [
        Reader("ORM", lambda: group.queryset().count()),
        Reader("by hand", lambda: hand.count(group.filter)),
    ]
    figures.append(compare(BENCHMARK, "count()", group.size, readers, plan.runs, env.journal))
    return figures


def get_by_key(env: Environment, plan: Plan, hand: ByHand, group: Group) -> list[Comparison]:
    """``get(pk=...)`` of records synced and unchanged, ``plan.operations`` per run: against
    the raw keyed ``GET``, and against the same result by hand (Django's local query, then
    the keyed ``GET`` with ``If-None-Match`` on the ETag of the row it read, answered 304)."""
    rows = group.queryset().skip_cdms().order_by("pk").values_list("pk", "cdms_pk")
    pks, keys = zip(*rows[: plan.operations], strict=True)

    def orm() -> None:
        for pk in pks:
            Organisation.objects.get(pk=pk)

    def raw() -> None:
        for key in keys:
            hand.get(str(key))

    def local_then_keyed() -> None:
        for pk in pks:
            row = Organisation.objects.skip_cdms().get(pk=pk)
            assert hand.get(str(row.cdms_pk), row.cdms_etag) is None  # 304: the row is current

    return compare_twice(
        BENCHMARK,
        "get(pk=...), per call",
        group.size,
        Reader("ORM", orm, per=len(pks)),
        Reader("by hand", raw, per=len(keys)),
        Reader("Django's + GET 304", local_then_keyed, per=len(pks)),
        plan.runs,
        env.journal,
    )


def first_from_the_feed(
    env: Environment, plan: Plan, hand: ByHand, groups: list[Group]
) -> list[Comparison]:
    """Unordered ``first()`` with reads backed by the change feed, after the table is filled
    (one untimed read): each read applies the changes since the last (none) and answers
    locally."""
    figures = []
    with override_settings(CDMS={**settings.CDMS, "READS": "changes"}):
        Organisation.objects.exists()  # fills the table: a full resync
        for group in groups:

            def baseline(group=group) -> Any:
                by_hand.upsert(hand.read_top(group.filter, 1))
                return group.queryset().skip_cdms().first()

            readers = [
                Reader("ORM", lambda group=group: group.queryset().first()),
                Reader("by hand", baseline),
            ]
            case = "first(), reads = 'changes'"
            figures.append(compare(BENCHMARK, case, group.size, readers, plan.runs, env.journal))
    return figures
