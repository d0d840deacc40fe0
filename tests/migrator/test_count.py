"""``count()`` answered by the remote's ``$count`` when the remote filter is exact: one request
that answers no more than one key however many records match, and the same number the sync
and Django's count give (``migrator.counting``); every other count keeps the sync first.

Seed accounts as name: employees, UK based (``tests.migrator.test_reads``): five UK based,
Acme Holdings 1200, Acme Widgets 85, 100% Organic Farms 40, Contoso Consulting 45 and
Rocket 🚀 Labs 7.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import connection
from django.db.models import Count, Q
from django.db.models.fields import NOT_PROVIDED
from django.test.utils import CaptureQueriesContext

import migrator
from cdms_api.simulator.seed import demo_key
from core.models import Contact, Organisation
from migrator import remote
from migrator.loader import RemoteNullWarning
from migrator.sync import SyncLimitExceeded
from migrator.testing import RemoteCallCounter, assertNumRemoteCalls
from tests.migrator.crm import CRM
from tests.secondapp.models import Company
from tests.seeded import ACME, CONTOSO, ROCKET

orgs = Organisation.objects
local_orgs = Organisation.objects.skip_cdms


def change_uk(crm: CRM) -> None:
    """A record that comes to match, one that no longer does, one deleted, one changed."""
    crm.add("Fresh Co", new_ukbased=True, numberofemployees=1)
    crm.change(CONTOSO, new_ukbased=False)
    crm.drop(ROCKET)
    crm.change(ACME, numberofemployees=1201)


def stored() -> dict[str, Any]:
    """The local table's rows, as they are."""
    return {str(o.cdms_pk): o.cdms_etag for o in local_orgs().all()}


@pytest.fixture
def settings_with(settings):
    def apply(**more: Any) -> None:
        settings.CDMS = {**settings.CDMS, **more}
        remote.reset()

    return apply


def test_count_of_an_exact_filter_is_one_count_request(crm, synced, cdms_simulator):
    change_uk(crm)
    before = stored()
    cdms_simulator.clear_journal()
    with assertNumRemoteCalls(1) as calls:
        assert orgs.filter(uk_based=True).count() == 4
    [sent] = calls.calls
    assert sent.method == "GET" and sent.path.endswith("/accounts")
    assert sent.params == {
        "$filter": "new_ukbased eq true",
        "$select": "accountid",
        "$count": "true",
    }
    [answered] = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")]
    assert answered["records"] == 1  # a page of one key, whatever the number
    assert stored() == before  # nothing read, nothing written: the remote's count is the answer
    # the sync's answer, Django's count over the rows it brought up to date
    assert len(orgs.filter(uk_based=True)) == 4
    assert local_orgs().filter(uk_based=True).count() == 4


def test_count_answers_one_small_request_however_many_match(crm, cdms_simulator):
    cdms_simulator.load(
        "accounts", [{"name": f"Many {i}", "numberofemployees": 777} for i in range(300)]
    )
    cdms_simulator.clear_journal()
    with assertNumRemoteCalls(1):
        assert orgs.filter(employees=777).count() == 300
    [answered] = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")]
    assert answered["records"] == 1
    assert not local_orgs().filter(employees=777).exists()


def test_count_of_every_record_and_of_none(crm, synced):
    crm.add("Fresh Co")
    with assertNumRemoteCalls(1) as calls:
        assert orgs.count() == 11
    assert "$filter" not in calls.calls[0].params
    with assertNumRemoteCalls(0):  # nothing can match: no request, as the sync makes none
        assert orgs.none().count() == 0
        assert orgs.filter(pk__in=[]).count() == 0


def test_acount_and_related_managers(crm, synced):
    crm.add_contact("Ann", "Acme", organisation=ACME)
    acme = local_orgs().get(name=ACME)
    with assertNumRemoteCalls(1):
        assert async_to_sync(orgs.filter(uk_based=True).acount)() == 5
    with assertNumRemoteCalls(1) as calls:
        assert acme.contacts.count() == 2
    assert calls.calls[0].params["$filter"] == f"_parentcustomerid_value eq {demo_key(ACME)}"


def test_rows_without_a_remote_key_are_counted_too(crm, synced):
    """Rows made locally (``skip_cdms``) have no record to count: the local count adds those
    the query selects, as the sync leaves them to Django's count."""
    local_orgs().create(name="Offline One", uk_based=True, employees=3)
    local_orgs().create(name="Offline Two", uk_based=False)
    crm.add("Fresh Co", new_ukbased=True)
    with CaptureQueriesContext(connection) as queries, assertNumRemoteCalls(1):
        assert orgs.filter(uk_based=True).count() == 7
    assert len(queries) == 1
    assert orgs.filter(uk_based=True, employees=3).count() == 1
    assert orgs.filter(cdms_pk__isnull=True).count() == 2
    # the sync (a text condition true of every row) and Django's count agree
    with assertNumRemoteCalls(2):
        assert orgs.filter(uk_based=True, name__contains="").count() == 7


def test_count_by_local_ids_counts_the_rows_without_a_key(crm, synced):
    offline = local_orgs().create(name="Offline", employees=3)
    acme = local_orgs().get(name=ACME)
    with assertNumRemoteCalls(1) as calls:
        assert orgs.filter(pk__in=[offline.pk, acme.pk]).count() == 2
    assert calls.calls[0].params["$filter"] == (
        f"Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=['{demo_key(ACME)}'])"
    )


def test_a_text_condition_keeps_the_sync(crm, synced, cdms_simulator):
    """Dataverse compares text case-insensitively: its count may be of more records than
    match locally. The matching keys are read first, then what changed."""
    crm.add("Acme Three", numberofemployees=1)
    crm.change(ACME, numberofemployees=1201)
    with assertNumRemoteCalls(2) as calls:
        assert orgs.filter(name__startswith="Acme").count() == 3
    assert "$count" not in calls.calls[0].params
    assert local_orgs().get(name=ACME).employees == 1201  # brought up to date
    crm.assert_touched_in_sync()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(lambda: orgs.filter(founded_on__month=3, uk_based=True), 1, id="relaxed"),
        pytest.param(lambda: orgs.filter(uk_based=True)[:3], 3, id="slice"),
        pytest.param(lambda: orgs.filter(uk_based=True).distinct(), 5, id="distinct"),
        pytest.param(
            lambda: orgs.filter(uk_based=True).annotate(n=Count("contacts")), 5, id="annotate"
        ),
        pytest.param(lambda: orgs.filter(contacts__last_name="Lovelace"), 1, id="reverse-join"),
        pytest.param(lambda: orgs.filter(parent__uk_based=True), 1, id="forward-join"),
        pytest.param(
            lambda: orgs.filter(Q(uk_based=True) | Q(contacts__first_name="Smith")), 6, id="or-join"
        ),
        pytest.param(lambda: Contact.objects.filter(organisation__uk_based=True), 3, id="contacts"),
    ],
)
def test_counts_the_remote_cannot_answer_exactly_keep_the_sync(crm, synced, query, expected):
    with RemoteCallCounter() as calls:
        assert query().count() == expected
    assert calls.calls and not any("$count" in (c.params or {}) for c in calls.calls)
    with assertNumRemoteCalls(0):
        assert query().skip_cdms().count() == expected


def test_skip_cdms_and_atomic_blocks_count_locally(crm, synced):
    crm.add("Fresh Co", new_ukbased=True)
    with assertNumRemoteCalls(0):
        assert local_orgs().filter(uk_based=True).count() == 5
    with RemoteCallCounter() as calls, migrator.atomic():
        pending = orgs.create(name="Pending Ltd", uk_based=True)
        assert orgs.filter(uk_based=True).count() == 7  # the block's create, not sent yet
    assert calls.calls and not any("$count" in (c.params or {}) for c in calls.calls)
    assert local_orgs().get(pk=pending.pk).cdms_etag


def test_count_past_max_sync_rows_under_the_cap_is_answered(crm, settings_with):
    """``MAX_SYNC_ROWS`` bounds the records a read brings in; a count reads none."""
    settings_with(MAX_SYNC_ROWS=6)
    with assertNumRemoteCalls(1):
        assert orgs.count() == 10
    with pytest.raises(SyncLimitExceeded):  # the sync of a text condition reads them
        orgs.filter(name__contains="").count()


def test_past_the_cap_the_count_falls_back_to_the_sync(crm, cdms_simulator, settings_with):
    """Past the 5,000 records ``$count`` counts, the count is the sync's: refused past
    ``MAX_SYNC_ROWS``, answered within it."""
    cdms_simulator.load(
        "accounts", [{"name": f"Many {i}", "numberofemployees": 888} for i in range(5001)]
    )
    with RemoteCallCounter() as calls, pytest.raises(SyncLimitExceeded):
        orgs.filter(employees=888).count()
    assert calls.calls[0].params["$count"] == "true"
    settings_with(MAX_SYNC_ROWS=6000)
    with RemoteCallCounter() as calls:
        assert orgs.filter(employees=888).count() == 5001
    assert calls.calls[0].params["$count"] == "true"
    assert "$count" not in calls.calls[1].params  # the sync: the keys, then what is new
    assert local_orgs().filter(employees=888).count() == 5001


def test_records_the_loader_cannot_store_are_not_counted(crm, monkeypatch):
    """A field that cannot hold null and has no default: a record with null there is left out
    of the local table, so the count leaves it out too (``loader.stored_only``)."""
    monkeypatch.setattr(Company._meta.get_field("headcount"), "default", NOT_PROVIDED)
    crm.add("Nobody Counted Ltd")  # no employees, as Fabrikam Design
    crm.add("Counted Ltd", numberofemployees=3)
    with assertNumRemoteCalls(1) as calls:
        assert Company.objects.filter(incorporated__isnull=True).count() == 1
    assert calls.calls[0].params["$filter"] == (
        "new_foundedon eq null and numberofemployees ne null"
    )
    with pytest.warns(RemoteNullWarning, match="has null in 'numberofemployees'"):
        assert [c.name for c in Company.objects.filter(incorporated__isnull=True)] == [
            "Counted Ltd"
        ]


@pytest.mark.parametrize(
    "condition",
    [Q(headcount=0), ~Q(headcount=0), Q(headcount__gt=5), Q(headcount__isnull=True)],
    ids=["exact", "excluded", "greater", "isnull"],
)
def test_a_field_storing_a_remote_null_as_its_default_is_not_counted_remotely(
    cdms_simulator, condition
):
    """``Company.headcount`` holds 0 where the remote has null: the remote cannot tell which
    records the local condition selects, so the count is the sync's."""
    cdms_simulator.load("accounts", [{"name": "No headcount", "numberofemployees": None}])
    expected = Company.objects.filter(condition).count()
    assert expected == Company.objects.skip_cdms().filter(condition).count()
    assert not [e for e in cdms_simulator.journal() if "%24count=true" in e["query"]]
