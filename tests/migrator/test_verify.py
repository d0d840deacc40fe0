"""The drift checker (``migrator.verify``, ``manage.py cdms_verify``, the Celery task) against
the simulator, the remote changed behind the cache's back."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from core.models import Contact, Organisation
from migrator import remote, verify
from migrator.resync import resync
from migrator.state import SyncState
from migrator.tasks import verify_model
from migrator.testing import assertNumRemoteCalls
from tests.resync_support import accounts, load, require_redis, resync_settings
from tests.seeded import ACME, ADA, CONTOSO, NORTHWIND


@pytest.fixture(autouse=True)
def cdms_resync(cdms_simulator, settings):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator, PAGE_SIZE=10)
    remote.reset()
    return cdms_simulator


def verify_command(*args: str) -> str:
    out = StringIO()
    call_command("cdms_verify", *args, stdout=out)
    return out.getvalue()


def drift_behind_the_back(crm) -> dict[str, str]:
    """One of each kind of drift on accounts; the keys, by kind."""
    crm.change(NORTHWIND, numberofemployees=999, telephone1="+44 1")
    added = crm.add("Behind The Back Ltd", track=False)
    gone = crm.key(CONTOSO)
    crm.client.delete("accounts", gone)
    stale = crm.key(ACME)
    Organisation.objects.skip_cdms().filter(cdms_pk=stale).update(cdms_etag='W/"1"')
    return {
        verify.DIFFERING: crm.key(NORTHWIND),
        verify.MISSING_LOCALLY: added["accountid"],
        verify.MISSING_REMOTELY: gone,
        verify.STALE_ETAG: stale,
    }


def test_no_drift_after_a_resync_one_request_per_page(cdms_simulator):
    load(cdms_simulator, "accounts", accounts(25))
    resync(Organisation)
    with assertNumRemoteCalls(4):  # 35 records, pages of 10; nothing to read again
        report = verify.verify(Organisation)
    assert report.checked == 35 and report.drift == 0 and report.differences == []
    state = SyncState.objects.get(model="core.Organisation")
    assert state.drift == 0 and state.verified_at is not None
    assert state.verify_report["checked"] == 35


def test_every_kind_of_drift_is_found_and_confirmed_by_key(crm, monkeypatch):
    resync(Organisation)
    keys = drift_behind_the_back(crm)
    monkeypatch.setattr(verify, "LOCAL_PAGE", 3)  # local pages in step with remote ones
    with assertNumRemoteCalls(2):  # a page of the 10 records, then the 4 suspects by key
        report = verify.verify(Organisation)
    assert report.checked == 11
    assert report.counts == dict.fromkeys(verify.KINDS, 1)
    found = {d.kind: d for d in report.differences}
    assert {kind: d.key for kind, d in found.items()} == keys
    assert found[verify.DIFFERING].fields == {
        "phone": (found[verify.DIFFERING].fields["phone"][0], "+44 1"),
        "employees": (found[verify.DIFFERING].fields["employees"][0], 999),
    }
    assert found[verify.STALE_ETAG].fields["ETag"][0] == 'W/"1"'


def test_a_lookup_is_compared_by_the_key_it_points_at(crm):
    resync(Organisation)
    resync(Contact)
    crm.change(ADA, Contact, organisation=NORTHWIND)
    report = verify.verify(Contact)
    [difference] = report.differences
    mine, theirs = difference.fields["organisation"]
    assert theirs == crm.key(NORTHWIND) and mine != theirs


def test_the_command_shows_the_drift_side_by_side_and_exits_non_zero(crm):
    resync(Organisation)
    keys = drift_behind_the_back(crm)
    out = StringIO()
    with pytest.raises(CommandError, match=r"drift found in core\.Organisation"):
        call_command("cdms_verify", "core.Organisation", stdout=out)
    text = out.getvalue()
    assert text.splitlines()[0].startswith("core.Organisation: 11 records checked in ")
    assert text.splitlines()[0].endswith(
        "drift: 1 missing locally, 1 missing remotely, 1 values differ, 1 stale ETag"
    )
    assert f"  values differ    {keys[verify.DIFFERING]}" in text
    assert "      employees  300" in text and "| 999" in text
    assert f"  missing locally  {keys[verify.MISSING_LOCALLY]}" in text


def test_fix_repairs_the_local_side_then_no_drift(crm):
    resync(Organisation)
    keys = drift_behind_the_back(crm)
    with pytest.raises(CommandError):
        verify_command("--fix", "core.Organisation")
    assert SyncState.objects.get(model="core.Organisation").verify_report["fixed"] == 4
    assert verify_command("core.Organisation").splitlines()[0].endswith(": no drift")
    for key in keys.values():
        crm.assert_in_sync(Organisation, key)
    out = StringIO()
    call_command("cdms_status", stdout=out)
    [row] = [line for line in out.getvalue().splitlines() if line.startswith("core.Organisation")]
    assert row.endswith(" 0")


def test_the_celery_task_returns_the_report_and_keeps_it(crm):
    resync(Organisation)
    crm.change(NORTHWIND, numberofemployees=12)
    result = verify_model.apply(args=["core.Organisation"]).get()
    assert result["drift"] == 1 and result["counts"][verify.DIFFERING] == 1
    assert SyncState.objects.get(model="core.Organisation").drift == 1


def test_a_remote_error_fails_the_command_naming_it(cdms_simulator):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 400})
    with pytest.raises(CommandError, match=r"some verifies failed: core\.Organisation"):
        verify_command("core.Organisation")


SQL_SERVER_ASCENDING = [  # as SQL Server sorts uniqueidentifiers: the last six bytes first
    "01000000-0000-0000-0000-000000000000",
    "00000001-0000-0000-0000-000000000000",
    "00000000-0100-0000-0000-000000000000",
    "00000000-0001-0000-0000-000000000000",
    "00000000-0000-0100-0000-000000000000",
    "00000000-0000-0001-0000-000000000000",
    "00000000-0000-0000-0001-000000000000",
    "00000000-0000-0000-0100-000000000000",
    "00000000-0000-0000-0000-000000000001",
    "00000000-0000-0000-0000-010000000000",
]


def test_keys_sort_as_sql_server_sorts_uniqueidentifiers_on_both_sides():
    sql_server = verify.ORDERS[1]
    assert sorted(reversed(SQL_SERVER_ASCENDING), key=sql_server.sort_key) == SQL_SERVER_ASCENDING
    Organisation.objects.skip_cdms().bulk_create(
        [Organisation(name=f"Key {n}", cdms_pk=key) for n, key in enumerate(SQL_SERVER_ASCENDING)]
    )
    rows = Organisation.objects.skip_cdms().order_by(*sql_server.local())
    assert [str(key) for key in rows.values_list("cdms_pk", flat=True)] == SQL_SERVER_ASCENDING


def test_a_remote_ordering_keys_as_sql_server_does_is_walked_in_that_order(
    cdms_simulator, remote_client
):
    """Dataverse's order, not the simulator's: the walk starts again in it, one page later."""
    resync(Organisation)
    records = list(remote_client.iter("accounts", select=Organisation.cdms.select, page_size=5000))
    records.sort(key=lambda r: verify.ORDERS[1].sort_key(r["accountid"]))
    assert records != sorted(records, key=lambda r: r["accountid"])
    cdms_simulator.add_faults(
        {
            "method": "GET",
            "path": "/accounts$",
            "status": 200,
            "times": 2,
            "body": {"value": records},
        }
    )
    with assertNumRemoteCalls(2):  # the first page, in text order then in SQL Server's
        report = verify.verify(Organisation)
    assert report.checked == 10 and report.drift == 0
