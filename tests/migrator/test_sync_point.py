"""Every way Django reads a synced model's rows syncs first, because every read ends in the
query's compiler, where the one sync point is (``migrator.query``).

The public methods of ``QuerySet`` and of the related managers are listed by introspection
and each is classified here: a reader is called after a remote change and must answer with
the change; a builder's queryset is evaluated and must too. A method that a new Django adds
fails ``test_every_public_method_is_classified`` until it is classified, so none can slip
past unseen. Then the reads that go around querysets: related descriptors, prefetches,
``refresh_from_db()``, ``async for``, a foreign key's validation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Max

from core.models import Contact, Organisation
from migrator.testing import RemoteCallCounter
from tests.seeded import ACME, ADA, ROCKET

NEW = "Renamed Remotely"


def run(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async method (a manager's is not marked as one) from a synchronous test."""

    async def call() -> Any:
        return await method(*args, **kwargs)

    return async_to_sync(call)()


async def collect(aiterable) -> list:
    return [item async for item in aiterable]


# A reader: (queryset, the changed row, the renamed field) -> whether it answered with the
# change. Each is one call of the method, as a user would write it.
Reader = Callable[[models.QuerySet, models.Model, str], bool]


def named(rows, field: str) -> bool:
    return [getattr(row, field) for row in rows] == [NEW]


READERS: dict[str, Reader] = {
    "get": lambda qs, row, f: getattr(qs.get(pk=row.pk), f) == NEW,
    "aget": lambda qs, row, f: getattr(run(qs.aget, pk=row.pk), f) == NEW,
    "count": lambda qs, row, f: qs.filter(**{f: NEW}).count() == 1,
    "acount": lambda qs, row, f: run(qs.filter(**{f: NEW}).acount) == 1,
    "exists": lambda qs, row, f: qs.filter(**{f: NEW}).exists(),
    "aexists": lambda qs, row, f: run(qs.filter(**{f: NEW}).aexists),
    "contains": lambda qs, row, f: qs.filter(**{f: NEW}).contains(row),
    "acontains": lambda qs, row, f: run(qs.filter(**{f: NEW}).acontains, row),
    "aggregate": lambda qs, row, f: qs.filter(pk=row.pk).aggregate(m=Max(f))["m"] == NEW,
    "aaggregate": lambda qs, row, f: (
        run(qs.filter(pk=row.pk).aaggregate, Max(f))[f"{f}__max"] == NEW
    ),
    "first": lambda qs, row, f: getattr(qs.filter(pk=row.pk).first(), f) == NEW,
    "afirst": lambda qs, row, f: getattr(run(qs.filter(pk=row.pk).afirst), f) == NEW,
    "last": lambda qs, row, f: getattr(qs.filter(pk=row.pk).last(), f) == NEW,
    "alast": lambda qs, row, f: getattr(run(qs.filter(pk=row.pk).alast), f) == NEW,
    "earliest": lambda qs, row, f: getattr(qs.filter(pk=row.pk).earliest("pk"), f) == NEW,
    "aearliest": lambda qs, row, f: getattr(run(qs.filter(pk=row.pk).aearliest, "pk"), f) == NEW,
    "latest": lambda qs, row, f: getattr(qs.filter(pk=row.pk).latest("pk"), f) == NEW,
    "alatest": lambda qs, row, f: getattr(run(qs.filter(pk=row.pk).alatest, "pk"), f) == NEW,
    "in_bulk": lambda qs, row, f: getattr(qs.in_bulk([row.pk])[row.pk], f) == NEW,
    "ain_bulk": lambda qs, row, f: getattr(run(qs.ain_bulk, [row.pk])[row.pk], f) == NEW,
    "iterator": lambda qs, row, f: named(qs.filter(pk=row.pk).iterator(), f),
    "aiterator": lambda qs, row, f: named(run(collect, qs.filter(pk=row.pk).aiterator()), f),
    "get_or_create": lambda qs, row, f: getattr(qs.get_or_create(pk=row.pk)[0], f) == NEW,
    "aget_or_create": lambda qs, row, f: getattr(run(qs.aget_or_create, pk=row.pk)[0], f) == NEW,
    "update_or_create": lambda qs, row, f: getattr(qs.update_or_create(pk=row.pk)[0], f) == NEW,
    "aupdate_or_create": lambda qs, row, f: (
        getattr(run(qs.aupdate_or_create, pk=row.pk)[0], f) == NEW
    ),
}

# A builder: a queryset of the changed row, evaluated by iteration.
Builder = Callable[[models.QuerySet, models.Model, str], Any]
BUILDERS: dict[str, Builder] = {
    "all": lambda qs, row, f: qs.all().filter(pk=row.pk),
    "filter": lambda qs, row, f: qs.filter(pk=row.pk),
    "exclude": lambda qs, row, f: qs.exclude(pk=-1).filter(pk=row.pk),
    "complex_filter": lambda qs, row, f: qs.complex_filter({"pk": row.pk}),
    "order_by": lambda qs, row, f: qs.filter(pk=row.pk).order_by(f),
    "reverse": lambda qs, row, f: qs.filter(pk=row.pk).order_by(f).reverse(),
    "distinct": lambda qs, row, f: qs.filter(pk=row.pk).distinct(),
    "annotate": lambda qs, row, f: qs.filter(pk=row.pk).annotate(n=Count("pk")),
    "alias": lambda qs, row, f: qs.alias(n=Count("pk")).filter(pk=row.pk),
    "select_related": lambda qs, row, f: qs.filter(pk=row.pk).select_related(),
    "prefetch_related": lambda qs, row, f: qs.filter(pk=row.pk).prefetch_related(),
    "defer": lambda qs, row, f: qs.filter(pk=row.pk).defer("cdms_etag"),
    "only": lambda qs, row, f: qs.filter(pk=row.pk).only(f),
    "using": lambda qs, row, f: qs.using("default").filter(pk=row.pk),
    "extra": lambda qs, row, f: qs.filter(pk=row.pk).extra(select={"one": "1"}),
    "union": lambda qs, row, f: qs.filter(pk=row.pk).union(qs.filter(pk=row.pk)),
    "intersection": lambda qs, row, f: qs.filter(pk=row.pk).intersection(qs.all()),
    "difference": lambda qs, row, f: qs.filter(pk=row.pk).difference(qs.filter(pk=-1)),
    "values": lambda qs, row, f: qs.filter(pk=row.pk).values(f),
    "values_list": lambda qs, row, f: qs.filter(pk=row.pk).values_list(f),
    "select_for_update": lambda qs, row, f: qs.filter(pk=row.pk).select_for_update(),
}

# Methods that read no rows of the model or are not reads; each is tested where it belongs.
NOT_READS = {
    "as_manager": "builds a manager",
    "resolve_expression": "a queryset used inside another query: synced by that query",
    "db": "the database alias",
    "ordered": "whether the query is ordered",
    "query": "the SQL query object",
    "none": "an empty queryset: nothing to read",
    "explain": "the database's plan, no rows",
    "aexplain": "the database's plan, no rows",
    "raw": "a RawQuerySet, synced when raw() is called (test_writes: raw)",
    "dates": "a list of dates, read through values (test_reads: dates)",
    "datetimes": "a list of date-times, read through values (test_reads: datetimes)",
}
WRITES = {
    name
    for name in dir(models.QuerySet)
    if getattr(getattr(models.QuerySet, name), "alters_data", False)
} - set(READERS)


def public_methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_every_public_method_is_classified():
    known = set(READERS) | set(BUILDERS) | set(NOT_READS) | WRITES
    unclassified = public_methods(models.QuerySet) - known
    assert not unclassified, f"classify these QuerySet methods in this module: {unclassified}"
    manager = type(Organisation.objects.first().contacts)
    related_only = public_methods(manager) - public_methods(models.QuerySet)
    assert related_only <= RELATED_MANAGER_WRITES | {
        "skip_cdms",
        "get_prefetch_queryset",  # prefetches: test_prefetching_*
        "get_prefetch_querysets",
        "do_not_call_in_templates",
        "check",
        "contribute_to_class",
        "db_manager",
        "deconstruct",
        "from_queryset",
        "get_queryset",
        "auto_created",
        "creation_counter",
        "use_in_migrations",
        "core_filters",
        "field",
        "instance",
        "model",
        "name",
    }, f"classify these related manager attributes in this module: {related_only}"


RELATED_MANAGER_WRITES = {"add", "aadd", "remove", "aremove", "set", "aset", "clear", "aclear"}


@pytest.fixture
def rocket(crm, synced) -> Organisation:
    row = Organisation.objects.skip_cdms().get(name=ROCKET)
    crm.change(ROCKET, name=NEW)
    return row


@pytest.fixture
def ada(crm, synced) -> Contact:
    row = Contact.objects.skip_cdms().get(first_name="Ada")
    crm.change(ADA, Contact, lastname=NEW)
    return row


def calls_made(read: Callable[[], Any]) -> tuple[Any, int]:
    with RemoteCallCounter() as counter:
        answer = read()
    return answer, len(counter)


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_reader_syncs(name, rocket):
    answered, calls = calls_made(lambda: READERS[name](Organisation.objects, rocket, "name"))
    assert answered and calls >= 1


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_builder_syncs(name, rocket):
    rows, calls = calls_made(lambda: list(BUILDERS[name](Organisation.objects, rocket, "name")))
    assert calls >= 1
    assert [
        r["name"] if isinstance(r, dict) else r[0] if isinstance(r, tuple) else r.name for r in rows
    ] == [NEW]


@pytest.mark.parametrize("name", sorted(READERS))
def test_each_reader_of_a_related_manager_syncs(name, ada):
    acme = Organisation.objects.skip_cdms().get(name=ACME)
    answered, calls = calls_made(lambda: READERS[name](acme.contacts, ada, "last_name"))
    assert answered and calls >= 1


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_builder_of_a_related_manager_syncs(name, ada):
    acme = Organisation.objects.skip_cdms().get(name=ACME)
    query = BUILDERS[name](acme.contacts.all(), ada, "last_name")
    rows, calls = calls_made(lambda: list(query))
    assert calls >= 1
    shown = [
        r["last_name"] if isinstance(r, dict) else r[0] if isinstance(r, tuple) else r.last_name
        for r in rows
    ]
    assert shown == [NEW]


def test_a_foreign_key_descriptor_syncs(crm, synced):
    crm.change(ACME, name=NEW)
    ada = Contact.objects.skip_cdms().get(first_name="Ada")
    organisation, calls = calls_made(lambda: ada.organisation)
    assert (organisation.name, calls) == (NEW, 1)


def test_prefetching_the_foreign_key_syncs(crm, synced):
    crm.change(ACME, name=NEW)
    query = Contact.objects.filter(first_name="Ada").prefetch_related("organisation")
    (ada,), calls = calls_made(lambda: list(query))
    assert (ada.organisation.name, calls) == (NEW, 2)


def test_prefetching_the_reverse_relation_syncs(ada):
    query = Organisation.objects.filter(name=ACME).prefetch_related("contacts")
    (acme,), calls = calls_made(lambda: list(query))
    assert ([c.last_name for c in acme.contacts.all()], calls) == ([NEW], 2)


def test_refresh_from_db_syncs(rocket):
    _, calls = calls_made(rocket.refresh_from_db)
    assert (rocket.name, calls) == (NEW, 1)


def test_a_deferred_field_loads_as_stored_without_a_request(rocket):
    row = Organisation.objects.skip_cdms().only("pk").get(pk=rocket.pk)
    name, calls = calls_made(lambda: row.name)
    assert (name, calls) == (ROCKET, 0)


def test_async_for_syncs(rocket):
    rows, calls = calls_made(lambda: run(collect, Organisation.objects.filter(pk=rocket.pk)))
    assert ([r.name for r in rows], calls) == ([NEW], 1)


def test_validating_a_foreign_key_syncs(crm, synced):
    """``full_clean()`` checks that the related row exists: a record deleted remotely is
    found gone, not taken for present from a stale row."""
    ada = Contact.objects.skip_cdms().get(first_name="Ada")
    crm.drop(ADA, Contact)
    crm.drop(ACME)
    with pytest.raises(ValidationError, match="is not a valid choice"):
        ada.full_clean()
