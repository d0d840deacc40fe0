"""The benchmarks' own parts: the baseline written by hand gives the ORM's results (else its
ratios would compare different work), and the measuring passes do what they say. The figures
themselves are never tested: ``make benchmark-quick`` runs every benchmark in CI."""

from __future__ import annotations

import pytest

from benchmarks import by_hand, data, resync
from benchmarks.by_hand import ByHand
from benchmarks.measure import Counts, Journal, Reader, compare
from core.models import Organisation
from tests.resync_support import TEST_REDIS_URL, require_redis

GROUP = 77
FIELDS = [
    "cdms_pk",
    "cdms_etag",
    "cdms_modified",
    "name",
    "website",
    "phone",
    "employees",
    "revenue",
    "uk_based",
    "founded_on",
    "parent",
]


@pytest.fixture
def group(cdms_simulator_settings, db):
    """Accounts of one group: most with every property set, one with nulls wherever the
    schema allows them."""
    records = [*data.accounts(12, GROUP), {"name": "Nulls everywhere", "numberofemployees": GROUP}]
    return data.load(cdms_simulator_settings, records)


def rows() -> list[dict]:
    return list(
        Organisation.objects.skip_cdms().filter(employees=GROUP).order_by("cdms_pk").values(*FIELDS)
    )


def test_by_hand_reads_store_what_the_orm_stores(cdms_simulator_settings, group):
    hand = ByHand(cdms_simulator_settings)
    filter = f"numberofemployees eq {GROUP}"
    by_hand.upsert(hand.read(filter))
    stored_by_hand = rows()
    assert len(stored_by_hand) == len(group)

    Organisation.objects.skip_cdms().filter(employees=GROUP).delete()
    orm_answer = list(Organisation.objects.filter(employees=GROUP))
    assert rows() == stored_by_hand
    assert by_hand.local(Organisation.objects.filter(employees=GROUP)) == orm_answer

    by_hand.upsert(hand.read(filter))  # again: the conflicting rows are updated, none added
    assert rows() == stored_by_hand


def test_by_hand_single_requests_answer_as_the_orm(cdms_simulator_settings, group):
    hand = ByHand(cdms_simulator_settings)
    filter = f"numberofemployees eq {GROUP}"
    assert hand.count(filter) == Organisation.objects.filter(employees=GROUP).count()
    # nulls sort apart on each database: compared among the records with a revenue
    [top] = hand.read_top(f"{filter} and revenue ne null", 1, "revenue desc")
    latest = Organisation.objects.filter(employees=GROUP, revenue__isnull=False).latest("revenue")
    assert top["accountid"] == str(latest.cdms_pk)
    assert len(hand.read_top(filter, 5)) == 5

    key = group[0]
    etags = hand.etags(group[:3])
    assert set(etags) == set(group[:3])
    updated = hand.update(key, {"name": "Renamed by hand"}, etags[key])
    assert updated["@odata.etag"] != etags[key]
    assert hand.get(key)["name"] == "Renamed by hand"
    hand.delete(key, updated["@odata.etag"])
    assert not Organisation.objects.filter(cdms_pk=key).exists()


class FakeJournal(Journal):
    """A journal of no simulator: each count and each timed run noted in ``calls``."""

    def __init__(self, calls: list[str]):
        self.calls = calls

    def count(self, action) -> Counts:
        self.calls.append("count")
        action()
        return Counts(requests=3, records=30, queries=2)

    def start(self) -> None:
        pass

    def served_s(self) -> float:
        return 0.5


def test_compare_prepares_every_pass_and_reports_per_operation():
    calls: list[str] = []
    subject = Reader("subject", lambda: calls.append("subject"), lambda: calls.append("prep"), 4)
    baseline = Reader("baseline", lambda: calls.append("baseline"))
    figure = compare("unit", "case", 10, [subject, baseline], runs=3, journal=FakeJournal(calls))

    # counted (and warmed up) first, then the timed runs alternating, then memory
    assert calls == [
        "prep", "count", "subject", "count", "baseline",
        "prep", "subject", "baseline", "prep", "subject", "baseline", "prep", "subject", "baseline",
        "prep", "subject", "baseline",
    ]  # fmt: skip
    assert len(figure.subject.wall_s) == len(figure.baseline.wall_s) == 3
    assert figure.subject.wall == pytest.approx(sorted(figure.subject.wall_s)[1] / 4)
    assert figure.subject.served == 0.5 / 4 and figure.baseline.served == 0.5
    assert figure.subject.counts == Counts(3, 30, 2)
    assert figure.subject.peak_bytes >= 0
    assert figure.ratio == pytest.approx(figure.subject.wall / figure.baseline.wall)
    assert figure.cpu_ratio == pytest.approx(figure.subject.cpu / figure.baseline.cpu)
    assert figure.as_json()["subject"]["operations_per_run"] == 4


@pytest.mark.django_db
def test_the_resync_benchmark_runs_small():
    require_redis()
    figures = resync.main(
        [
            "--sizes",
            "150",
            "300",
            "--changes",
            "3",
            "--page-size",
            "100",
            "--lock-url",
            TEST_REDIS_URL,
        ]
    )
    assert set(figures["sizes"]) == {150, 300}
    assert figures["incremental"]["incremental_requests"] == 1
    assert figures["list_read"]["changes"]["requests"] == 1
