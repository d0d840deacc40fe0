"""Reads backed by the change feed (``migrator.feed``): the local table is filled once by a
full resync, then every read applies the changes since (one request, usually empty) and Django
answers exactly from the local table, whatever the lookup, the ordering or the size."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.db import close_old_connections, connection
from django.db.models import Count, Sum
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation
from migrator import feed as feed_module
from migrator import partitions, remote
from migrator.locks import ResyncLock
from migrator.state import SyncState
from migrator.testing import assertNumRemoteCalls
from tests.migrator.crm import names
from tests.migrator.test_property import _tree, account_records, leaves
from tests.resync_support import accounts, load, require_redis, resync_settings
from tests.seeded import ACME, ALL, PEOPLE, ROCKET, WIDGETS

orgs = Organisation.objects


@pytest.fixture(autouse=True)
def feed(cdms_simulator, settings):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator, READS="changes")
    remote.reset()
    return cdms_simulator


@pytest.fixture
def filled():
    """The first reads have filled the local tables."""
    assert names(orgs.all()) == ALL
    assert Contact.objects.count() == len(PEOPLE)


def deltas(simulator) -> list[dict]:
    """The requests of the simulator's journal that followed a delta link."""
    return [e for e in simulator.journal() if "deltatoken" in (e.get("query") or "")]


def test_the_first_read_fills_the_table_and_says_so(feed, caplog):
    with caplog.at_level(logging.INFO, logger="migrator"):
        assert orgs.count() == len(ALL)
    assert "never filled: a full resync first" in caplog.text
    assert "filling the local table" in caplog.text
    assert SyncState.of(Organisation).delta_link


def test_a_read_with_nothing_changed_is_one_request(filled):
    with assertNumRemoteCalls(1):
        assert names(orgs.filter(name__startswith="Acme")) == {ACME, WIDGETS}


def test_a_read_with_nothing_changed_writes_only_the_feed_s_new_link(filled):
    """Nothing changed: the model's state read and its new delta link written, then the
    query itself; no other local statement."""
    with assertNumRemoteCalls(1), CaptureQueriesContext(connection) as captured:
        assert orgs.filter(name__startswith="Acme").first().name in {ACME, WIDGETS}
    statements = [q["sql"] for q in captured]
    assert len(statements) == 3, statements  # the state, its new link, the query
    writes = [sql for sql in statements if not sql.lstrip().upper().startswith("SELECT")]
    assert len(writes) == 1 and writes[0].startswith('UPDATE "migrator_syncstate"'), writes


def test_remote_changes_are_applied_before_the_read(crm, filled):
    crm.change(ROCKET, name="Rocket Two")
    crm.drop(ACME)
    crm.add("Newcomer Ltd")
    with assertNumRemoteCalls(1):
        assert names(orgs.all()) == ALL - {ROCKET, ACME} | {"Rocket Two", "Newcomer Ltd"}
    crm.assert_touched_in_sync()


@pytest.mark.parametrize(
    "query",
    [
        lambda: orgs.filter(name__regex=r"^Acme "),
        lambda: orgs.filter(founded_on__month=3),
        lambda: orgs.filter(founded_on__week_day=2),
        lambda: orgs.exclude(name__icontains="a"),
        lambda: orgs.filter(website__gt="b"),
        lambda: orgs.order_by("?"),
        lambda: orgs.annotate(n=Count("contacts")).filter(n__gt=0),
        lambda: orgs.filter(contacts__last_name__iregex="^l"),
        lambda: orgs.raw("SELECT * FROM core_organisation WHERE uk_based"),
    ],
    ids=[
        "regex",
        "month",
        "week_day",
        "negated text",
        "text order",
        "random",
        "annotated",
        "across a relation",
        "raw",
    ],
)
def test_any_query_is_answered_exactly_with_one_request(filled, query):
    """No relaxation, no refusal: the local table is the remote's, the local query decides.
    (One request per model read: the contacts' feed too when the query reads them.)"""
    expected = {o.pk for o in (query().skip_cdms() if hasattr(query(), "skip_cdms") else [])}
    with assertNumRemoteCalls(2 if "core_contact" in str(query().query) else 1):
        rows = list(query())
    if expected:
        assert {o.pk for o in rows} == expected


def test_a_count_past_5000_is_exact_with_one_request(feed, filled):
    load(feed, "accounts", accounts(6_000))
    list(orgs.filter(pk=0))  # applies those 6,000 creations
    with assertNumRemoteCalls(1):
        assert orgs.count() == 6_000 + len(ALL)
    with assertNumRemoteCalls(1):
        assert orgs.filter(name__startswith="Bulk").aggregate(n=Sum("employees"))["n"] == sum(
            range(6_000)
        )


def test_reads_within_the_freshness_window_share_one_check(crm, filled, settings):
    settings.CDMS = {**settings.CDMS, "FRESHNESS_MS": 1500}
    time.sleep(1.6)  # the fill's check is older than the window
    crm.change(ROCKET, name="Rocket Three")
    with assertNumRemoteCalls(1):
        for _ in range(20):
            assert "Rocket Three" in names(orgs.filter(uk_based=True))


def test_another_process_shares_the_check_through_redis(filled, settings, monkeypatch):
    """A process that never checked itself finds the last check in Redis."""
    settings.CDMS = {**settings.CDMS, "FRESHNESS_MS": 60_000}
    monkeypatch.setattr(feed_module, "_checked_here", {})
    with assertNumRemoteCalls(0):
        assert names(orgs.all()) == ALL


def test_a_read_during_a_partitioned_full_resync_is_refused(feed, filled):
    """Its ranges fill the table over hours: a read neither answers from the half-filled
    table nor waits that long."""
    partitions.plan(Organisation, 2)
    with pytest.raises(feed_module.FeedTimeout, match="partitioned full resync is in progress"):
        orgs.count()
    partitions.resync_partitioned(Organisation, 2)  # its ranges read, and merged
    assert orgs.count() == len(ALL)


def test_an_expired_delta_link_refills_the_table(crm, feed, filled, caplog):
    crm.change(ROCKET, name="Rocket Four")
    feed.expire_changes("accounts")
    with caplog.at_level(logging.WARNING, logger="migrator"):
        assert "Rocket Four" in names(orgs.all())
    assert "expired" in caplog.text
    crm.assert_touched_in_sync()


def test_a_query_joining_a_filtered_model_is_read_the_filtered_way(crm, filled, settings):
    """Contacts stay filtered here: a query that reads them translates its conditions."""
    settings.CDMS = {**settings.CDMS, "READS": "filtered"}
    Organisation.cdms.reads = "changes"
    try:
        crm.change(ROCKET, name="Rocket Five")
        assert names(orgs.filter(name="Rocket Five")) == {"Rocket Five"}  # the feed
        assert "$filter" in Contact.objects.filter(last_name="Lovelace").cdms_query
    finally:
        Organisation.cdms.reads = None


@pytest.mark.django_db(transaction=True)
def test_concurrent_readers_apply_each_change_once(crm, feed, filled):
    """Two readers at once after a change: one follows the delta link, the other waits for
    it and answers with the change, without a request of its own. (Both ask while a resync
    holds the lock, so that neither asks after the other's check began: a reader that asks
    later makes a check of its own.)"""
    crm.change(ROCKET, name="Rocket Six")
    feed.clear_journal()
    answers = []

    def reader():
        try:
            answers.append(names(orgs.filter(name="Rocket Six")))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    with ResyncLock("core.Organisation") as held:
        assert held
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # both readers ask, and wait for the lock
    for thread in threads:
        thread.join(60)
    assert answers == [{"Rocket Six"}, {"Rocket Six"}]
    assert len(deltas(feed)) == 1


# Random queries after random remote changes, every answer equal to the truth --------------------


changes = st.lists(
    st.tuples(
        st.sampled_from(["rename", "drop", "add", "employees"]),
        st.sampled_from(sorted(ALL)),
        st.integers(-2, 12),
    ),
    max_size=4,
)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    records=account_records(),
    steps=st.lists(
        st.tuples(changes, st.recursive(leaves, _tree, max_leaves=4)), min_size=1, max_size=3
    ),
    page_size=st.sampled_from([2, 5000]),
)
def test_random_queries_after_random_changes_match_the_truth(feed, crm, records, steps, page_size):
    """With pages of 2, the table's fill and the changes of a step come in several pages."""
    feed.reset()
    feed.load("accounts", records)
    SyncState.objects.all().delete()
    Organisation.objects.skip_cdms().all().delete()
    with override_settings(CDMS={**django_settings.CDMS, "PAGE_SIZE": page_size}):
        apply_and_compare(crm, steps)


def apply_and_compare(crm, steps) -> None:
    for remote_changes, tree in steps:
        for kind, name, number in remote_changes:
            key = demo_key(name)
            if crm.record(Organisation, key) is None:
                continue
            if kind == "rename":
                crm.client.update("accounts", key, {"name": f"{name} {number}"})
            elif kind == "drop":
                crm.client.delete("accounts", key)
            elif kind == "add":
                crm.client.create(
                    "accounts", {"name": f"New {number}", "numberofemployees": number}
                )
            else:
                crm.client.update("accounts", key, {"numberofemployees": number})
        actual = {o.cdms_pk for o in orgs.filter(tree)}
        truth = {str(r["accountid"]) for r in crm.all()}
        local = {str(k) for k in orgs.skip_cdms().values_list("cdms_pk", flat=True)}
        assert local == truth  # the table is the remote's
        assert actual == set(orgs.skip_cdms().filter(tree).values_list("cdms_pk", flat=True))
