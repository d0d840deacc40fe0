"""Every fault kind on every write, once, twice and always, each followed by a retry of the
same call once the remote is back: no record created twice, no acknowledged write lost, and
the local table equal to the remote after one synced read.

A fault hits every request to the entity set (``times`` of them, or all), the client's
read-backs included, so that "always" leaves the outcome of the write unknown to the client.
"""

from __future__ import annotations

import time

import pytest

from cdms_api.errors import BulkWriteError, CDMSError, PreconditionFailed
from core.models import Organisation
from tests.seeded import NORTHWIND

READ_TIMEOUT_S = 0.3
DELAY_S = READ_TIMEOUT_S + 0.2
FAULTS = {
    "500": {"status": 500},
    "502": {"status": 502},
    "503": {"status": 503},
    "429": {"status": 429, "headers": {"Retry-After": "0"}},
    "drop": {"action": "drop"},
    "timeout": {"action": "pass", "delay_ms": int(DELAY_S * 1000)},
    "applied, then 503": {"action": "apply_then_fail", "status": 503},
    "applied, then dropped": {"action": "apply_then_fail", "status": None},
}
TIMES = {"once": 1, "twice": 2, "always": None}


@pytest.fixture
def quick_timeouts(settings, cdms_simulator, request):
    settings.CDMS = {**settings.CDMS, "TIMEOUT": (2.0, READ_TIMEOUT_S)}
    yield
    if request.node.callspec.params["fault"] == "timeout":
        # a request the client gave up on is still served: let it end before the next
        # test's reset, or it would change the next test's data
        time.sleep(DELAY_S)


def faulty(simulator, fault: str, times: str) -> None:
    simulator.add_faults(
        {"method": "*", "path": "/accounts", "times": TIMES[times], **FAULTS[fault]}
    )


def attempt(simulator, call) -> bool:
    """Make the call under the fault, then retry it once the remote is back if it raised;
    whether the first attempt was acknowledged."""
    try:
        call()
    except CDMSError:
        simulator.clear_faults()
        call()
        return False
    simulator.clear_faults()
    return True


def assert_local_equals_remote(crm, name: str) -> None:
    """One synced read, then the row and the record agree (or neither exists)."""
    list(Organisation.objects.filter(name=name))
    records = crm.find("accounts", "name", name)
    assert len(records) <= 1, f"{name} created {len(records)} times"
    rows = Organisation.objects.skip_cdms().filter(name=name)
    assert [str(row.cdms_pk) for row in rows] == [r["accountid"] for r in records]
    for record in records:
        crm.assert_in_sync(Organisation, record["accountid"])


@pytest.mark.parametrize("times", TIMES)
@pytest.mark.parametrize("fault", FAULTS)
def test_create(crm, cdms_simulator, quick_timeouts, fault, times):
    org = Organisation(name="Faulty Create Ltd", employees=7)
    faulty(cdms_simulator, fault, times)
    attempt(cdms_simulator, org.save)
    [record] = crm.find("accounts", "name", "Faulty Create Ltd")
    assert record["accountid"] == str(org.cdms_pk)
    assert record["numberofemployees"] == 7
    assert_local_equals_remote(crm, "Faulty Create Ltd")


@pytest.mark.parametrize("times", TIMES)
@pytest.mark.parametrize("fault", FAULTS)
def test_update(crm, cdms_simulator, quick_timeouts, synced, fault, times):
    org = Organisation.objects.get(name=NORTHWIND)
    org.employees = 301
    faulty(cdms_simulator, fault, times)
    attempt(cdms_simulator, org.save)
    assert crm.find("accounts", "name", NORTHWIND)[0]["numberofemployees"] == 301
    assert_local_equals_remote(crm, NORTHWIND)


@pytest.mark.parametrize("times", TIMES)
@pytest.mark.parametrize("fault", FAULTS)
def test_delete(crm, cdms_simulator, quick_timeouts, synced, fault, times):
    org = Organisation.objects.get(name=NORTHWIND)
    faulty(cdms_simulator, fault, times)
    attempt(cdms_simulator, org.delete)
    assert crm.find("accounts", "name", NORTHWIND) == []
    assert_local_equals_remote(crm, NORTHWIND)


# Found by the fault soak: a 412 may be the write's own earlier attempt ------------------------
APPLIED_THEN_503 = {"times": 1, "action": "apply_then_fail", "status": 503}
NO_READS = {"method": "GET", "path": "/accounts", "times": None, "status": 500}


def test_an_update_whose_412_cannot_be_found_out_is_ambiguous(crm, cdms_simulator, synced):
    """Applied, answered 503, sent again by the session (503: the remote did not act), 412 on
    the ETag the first attempt changed; the record cannot be read to find out: the error
    says the save may have happened -- it did."""
    org = Organisation.objects.get(name=NORTHWIND)
    org.employees = 77
    cdms_simulator.add_faults(
        {"method": "PATCH", "path": "/accounts", **APPLIED_THEN_503}, NO_READS
    )
    with pytest.raises(PreconditionFailed) as caught:
        org.save()
    assert caught.value.ambiguous
    cdms_simulator.clear_faults()
    assert crm.find("accounts", "name", NORTHWIND)[0]["numberofemployees"] == 77


def test_bulk_updates_whose_412_cannot_be_found_out_are_ambiguous(crm, cdms_simulator, synced):
    cdms_simulator.add_faults(
        {"method": "POST", "path": r"/\$batch", **APPLIED_THEN_503},
        {"method": "GET", "path": "/accounts", "times": 1, "action": "pass"},  # update's read
        NO_READS,
    )
    with pytest.raises(BulkWriteError) as caught:
        Organisation.objects.filter(cdms_pk=crm.key(NORTHWIND)).update(employees=88)
    assert caught.value.ambiguous
    assert all(error.ambiguous for _, error in caught.value.failed)
    cdms_simulator.clear_faults()
    assert crm.find("accounts", "name", NORTHWIND)[0]["numberofemployees"] == 88
