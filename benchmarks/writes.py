"""Per-object ``save()`` and ``delete()`` against the one raw request a careful engineer would
send (``PATCH`` with ``If-Match`` and ``Prefer: return=representation``; ``DELETE`` with
``If-Match``), and against the same result by hand: that request and Django's own local write
of the row. ``plan.operations`` objects per run, figures per call."""

from __future__ import annotations

from itertools import count

from dateutil.parser import isoparse

from core.models import Organisation

from . import data
from .by_hand import ByHand
from .measure import Comparison, Plan, Reader, compare_twice
from .orm import Environment

BENCHMARK = "writes"
SAVED = 1  # numberofemployees of the accounts saved
DELETED = 2  # and of those deleted, created again before each run


def run(env: Environment, plan: Plan) -> list[Comparison]:
    hand = ByHand(env.simulator)
    return [*save(env, plan, hand), *delete(env, plan, hand)]


def save(env: Environment, plan: Plan, hand: ByHand) -> list[Comparison]:
    n = plan.operations
    keys = data.load(env.simulator, data.accounts(2 * n, SAVED))
    ours, theirs = keys[:n], keys[n:]  # the ORM saves its own records, the raw requests theirs
    list(Organisation.objects.filter(employees=SAVED))
    names = count()
    objects: list[Organisation] = []
    etags: dict[str, str] = {}

    def load_objects() -> None:
        objects[:] = Organisation.objects.skip_cdms().filter(cdms_pk__in=ours)

    def orm() -> None:
        for obj in objects:
            obj.name = f"Saved account {next(names)}"
            obj.save()

    def read_etags() -> None:
        etags.clear()
        etags.update(hand.etags(theirs))

    def baseline() -> None:
        for key, etag in etags.items():
            hand.update(key, {"name": f"Saved account {next(names)}"}, etag)

    def patch_and_local() -> None:
        for obj in objects:
            obj.name = f"Saved account {next(names)}"
            record = hand.update(str(obj.cdms_pk), {"name": obj.name}, obj.cdms_etag)
            obj.cdms_etag = record["@odata.etag"]
            obj.cdms_modified = isoparse(record["modifiedon"])
            obj.save(skip_cdms=True)

    return compare_twice(
        BENCHMARK,
        "save(), per call",
        None,
        Reader("ORM", orm, load_objects, per=n),
        Reader("raw PATCH", baseline, read_etags, per=n),
        Reader("PATCH + Django's", patch_and_local, load_objects, per=n),
        plan.runs,
        env.journal,
    )


def delete(env: Environment, plan: Plan, hand: ByHand) -> list[Comparison]:
    """Against the raw request alone, and against the same result by hand: the raw request
    and Django's own deletion of the row (``on_delete`` applied to the rows pointing at it),
    the floor for any cache that keeps Django's deletion."""
    n = plan.operations
    created = count()
    objects: list[Organisation] = []
    theirs: list[Organisation] = []
    etags: dict[str, str] = {}

    def fresh_records() -> list[str]:
        return data.load(env.simulator, data.accounts(n, DELETED, start=next(created) * n))

    def load_objects(into: list[Organisation]) -> None:
        fresh_records()
        into[:] = Organisation.objects.filter(employees=DELETED)  # synced by this read

    def orm() -> None:
        for obj in objects:
            obj.delete()

    def read_etags() -> None:
        etags.clear()
        etags.update(hand.etags(fresh_records()))

    def raw() -> None:
        for key, etag in etags.items():
            hand.delete(key, etag)

    def raw_and_local() -> None:
        for obj in theirs:
            hand.delete(str(obj.cdms_pk), obj.cdms_etag)
            obj.delete(skip_cdms=True)

    return compare_twice(
        BENCHMARK,
        "delete(), per call",
        None,
        Reader("ORM", orm, lambda: load_objects(objects), per=n),
        Reader("raw DELETE", raw, read_etags, per=n),
        Reader("DELETE + Django's", raw_and_local, lambda: load_objects(theirs), per=n),
        plan.runs,
        env.journal,
    )
