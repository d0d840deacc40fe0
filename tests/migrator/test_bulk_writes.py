"""``bulk_create``, ``bulk_update`` and ``qs.update()`` through to the CRM, over HTTP against
the simulator: exact remote requests, both sides in step afterwards (the local row holds what
the CRM stored, ETag included), partial failures reported with both sides in step, and
local failures sending nothing."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
from django.core.exceptions import FieldError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, OuterRef, Subquery
from django.test.utils import CaptureQueriesContext

from cdms_api.errors import BulkWriteError, CDMSNotSupported, NotFound, PreconditionFailed
from core.models import Contact, Organisation
from migrator import remote
from migrator.batches import NotApplied
from migrator.testing import assertNumRemoteCalls
from tests.secondapp.models import Address, Company, Sample
from tests.seeded import ACME, CONTOSO, FABRIKAM, NORTHWIND

pytestmark = pytest.mark.usefixtures("bulk_ready")


def requests_made(counter) -> list[tuple[str, str]]:
    """(method, last path segment) of each request a counter recorded."""
    return [(c.method, c.path.rsplit("/", 1)[-1]) for c in counter.calls]


def local_keys(model, **conditions) -> set[str]:
    return {
        str(k)
        for k in model.objects.skip_cdms().filter(**conditions).values_list("cdms_pk", flat=True)
    }


@pytest.fixture
def gone_parent(crm) -> Organisation:
    """An organisation with a local row whose record another user deleted: binding a lookup
    to it fails remotely (404), and only remotely."""
    org = Organisation.objects.create(name="Gone Parent Ltd")
    crm.client.delete("accounts", org.cdms_pk)
    return org


# bulk_create -------------------------------------------------------------------------------


def test_bulk_create_timed_out_is_not_sent_again(crm, cdms_simulator, settings):
    """The remote still serves the ``CreateMultiple`` the client stopped waiting for: read
    back, its records are not there yet, and sent again they could be created after a later
    delete of them."""
    settings.CDMS = {**settings.CDMS, "TIMEOUT": (2.0, 0.3)}
    remote.client().bulk_messages("accounts")
    cdms_simulator.add_faults(
        {"method": "POST", "path": "CreateMultiple$", "action": "pass", "delay_ms": 600}
    )
    objs = [Organisation(name=f"Late Bulk {i}") for i in range(3)]
    with pytest.raises(BulkWriteError) as raised:
        Organisation.objects.bulk_create(objs)
    assert raised.value.ambiguous and not raised.value.done
    assert not local_keys(Organisation, name__startswith="Late Bulk")
    time.sleep(0.6)  # the first request lands
    assert [len(crm.find("accounts", "name", f"Late Bulk {i}")) for i in range(3)] == [1, 1, 1]


def test_bulk_create_is_one_create_multiple_and_one_read_back(crm, synced):
    acme = Organisation.objects.skip_cdms().get(name=ACME)
    objs = [
        Organisation(name="Bulk One", employees=1, revenue=Decimal("10.123456")),
        Organisation(name="Bulk Two", employees=2, parent=acme),
        Organisation(name="Bulk Three", uk_based=True),
    ]
    with assertNumRemoteCalls(2) as calls:
        created = Organisation.objects.bulk_create(objs)
    assert requests_made(calls) == [
        ("POST", "Microsoft.Dynamics.CRM.CreateMultiple"),
        ("GET", "accounts"),
    ]
    assert created is not None and [o.name for o in created] == [o.name for o in objs]
    for obj in objs:
        assert obj.pk is not None and not obj._state.adding
        record = crm.record(Organisation, str(obj.cdms_pk))
        assert obj.cdms_etag == record["@odata.etag"]
        crm.assert_in_sync(Organisation, str(obj.cdms_pk))
    # the local row and the instance hold what the CRM stored (rounded to its scale)
    assert objs[0].revenue == Decimal("10.1235")
    assert Organisation.objects.skip_cdms().get(pk=objs[1].pk).parent_id == acme.pk
    assert crm.record(Organisation, str(objs[1].cdms_pk))["_parentaccountid_value"] == str(
        acme.cdms_pk
    )
    with assertNumRemoteCalls(0):
        objs[2].save()  # nothing changed since the CRM stored it


def test_the_first_bulk_create_of_a_client_reads_what_the_table_takes(crm):
    remote.reset()  # a new client, which has read no table definition yet
    with assertNumRemoteCalls(4) as calls:
        Organisation.objects.bulk_create([Organisation(name="First Bulk")])
    assert requests_made(calls) == [
        ("GET", "EntityDefinitions"),
        ("GET", "sdkmessagefilters"),
        ("POST", "Microsoft.Dynamics.CRM.CreateMultiple"),
        ("GET", "accounts"),
    ]


def test_a_thousand_objects_are_one_create_and_one_read(crm):
    objs = [Organisation(name=f"Thousand {i:04d}", employees=i) for i in range(1000)]
    with assertNumRemoteCalls(2) as calls:
        Organisation.objects.bulk_create(objs)
    # the read back of 1,000 keys is too long for a URL: one $batch of one read
    assert requests_made(calls) == [
        ("POST", "Microsoft.Dynamics.CRM.CreateMultiple"),
        ("POST", "$batch"),
    ]
    assert local_keys(Organisation, name__startswith="Thousand ") == {str(o.cdms_pk) for o in objs}
    assert all(o.cdms_etag for o in objs)
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in objs[::97]])


def test_more_than_a_thousand_objects_are_two_requests_per_thousand(crm):
    objs = [Organisation(name=f"Many {i:04d}") for i in range(1001)]
    with assertNumRemoteCalls(4) as calls:
        Organisation.objects.bulk_create(objs)
    assert [m for m, _ in requests_made(calls)] == ["POST", "POST", "POST", "GET"]
    assert Organisation.objects.skip_cdms().filter(name__startswith="Many ").count() == 1001


def test_local_queries_grow_by_the_batch_not_by_the_row(crm):
    def queries(n: int) -> int:
        objs = [Organisation(name=f"Counted {n} {i}", employees=i) for i in range(n)]
        with CaptureQueriesContext(connection) as captured:
            Organisation.objects.bulk_create(objs)
        return len(captured)

    few, many = queries(5), queries(300)
    assert many < 300 / 10, (few, many)


def test_a_table_without_create_multiple_takes_one_batch(crm):
    company = Company.objects.create(name="Addressed Ltd")
    objs = [Address(name=f"Office {i}", city="Leeds", company=company) for i in range(3)]
    with assertNumRemoteCalls(1) as calls:
        Address.objects.bulk_create(objs)
    assert requests_made(calls) == [("POST", "$batch")]
    for obj in objs:
        crm.assert_in_sync(Address, str(obj.cdms_pk))
        assert obj.cdms_etag and obj.company_id == company.pk


def test_atomic_bulk_create_is_one_changeset(crm):
    objs = [Organisation(name=f"Together {i}") for i in range(3)]
    with assertNumRemoteCalls(1) as calls:
        Organisation.objects.bulk_create(objs, atomic=True)
    assert requests_made(calls) == [("POST", "$batch")]
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in objs])


def test_atomic_bulk_create_failing_creates_nothing_on_either_side(crm, gone_parent):
    objs = [
        Organisation(name="Together A"),
        Organisation(name="Together B", parent=gone_parent),
        Organisation(name="Together C"),
    ]
    with assertNumRemoteCalls(1), pytest.raises(BulkWriteError) as caught:
        Organisation.objects.bulk_create(objs, atomic=True)
    failed = caught.value.failed
    assert [obj for obj, _ in failed] == objs
    assert [type(error) for _, error in failed] == [NotApplied, NotFound, NotApplied]
    assert caught.value.done == []
    assert not Organisation.objects.skip_cdms().filter(name__startswith="Together ").exists()
    assert crm.find("accounts", "name", "Together A") == []
    assert all(o.pk is None and o._state.adding and o.cdms_pk for o in objs)


def test_atomic_bulk_create_of_more_than_a_changeset_is_refused(crm):
    objs = [Organisation(name=f"Too many {i}") for i in range(1001)]
    with assertNumRemoteCalls(0), pytest.raises(CDMSNotSupported, match="at most 1000"):
        Organisation.objects.bulk_create(objs, atomic=True)
    assert not Organisation.objects.skip_cdms().filter(name__startswith="Too many").exists()


def test_a_partial_failure_keeps_the_others_created_on_both_sides(crm, gone_parent):
    """CreateMultiple is all or nothing: refused, the objects go again one operation each in
    a $batch, so that each has its own outcome; the local rows are those of the records
    made."""
    objs = [
        Organisation(name="Partial A"),
        Organisation(name="Partial B", parent=gone_parent),
        Organisation(name="Partial C"),
    ]
    with assertNumRemoteCalls(2) as calls, pytest.raises(BulkWriteError) as caught:
        Organisation.objects.bulk_create(objs)
    assert requests_made(calls) == [
        ("POST", "Microsoft.Dynamics.CRM.CreateMultiple"),
        ("POST", "$batch"),
    ]
    error = caught.value
    assert [obj for obj, _ in error.failed] == [objs[1]]
    assert isinstance(error.failed[0][1], NotFound)
    assert error.done == [objs[0], objs[2]]
    assert "Partial B" in str(error) and "1 of 3 remote writes failed" in str(error)
    assert local_keys(Organisation, name__startswith="Partial ") == {
        str(objs[0].cdms_pk),
        str(objs[2].cdms_pk),
    }
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in objs])
    assert objs[1].pk is None and objs[1]._state.adding
    assert objs[0].pk is not None and objs[0].cdms_etag

    # fixed, the failed one is created on its own, with the key it was given
    key = objs[1].cdms_pk
    objs[1].parent = None
    with assertNumRemoteCalls(2):
        Organisation.objects.bulk_create([objs[1]])
    assert objs[1].cdms_pk == key
    crm.assert_in_sync(Organisation, str(key))


def test_a_local_failure_sends_nothing(crm):
    key = uuid.uuid4()
    objs = [Organisation(name="Twin A", cdms_pk=key), Organisation(name="Twin B", cdms_pk=key)]
    with assertNumRemoteCalls(0), pytest.raises(IntegrityError), transaction.atomic():
        Organisation.objects.bulk_create(objs)
    assert crm.find("accounts", "name", "Twin A") == []


@pytest.mark.parametrize("option", ["ignore_conflicts", "update_conflicts"])
def test_conflict_options_are_refused(crm, option):
    extra = {"update_fields": ["name"], "unique_fields": ["cdms_pk"]} if option[0] == "u" else {}
    with assertNumRemoteCalls(0), pytest.raises(CDMSNotSupported, match=option):
        Organisation.objects.bulk_create([Organisation(name="Conflict")], **{option: True}, **extra)


# bulk_update --------------------------------------------------------------------------------


@pytest.fixture
def three(synced) -> list[Organisation]:
    return list(Organisation.objects.skip_cdms().filter(name__in=[NORTHWIND, CONTOSO, FABRIKAM]))


def test_bulk_update_sends_each_object_with_its_etag_in_one_batch(crm, three):
    for i, org in enumerate(three):
        org.employees = 1000 + i
        org.phone = "+1 not sent"
    with assertNumRemoteCalls(1) as calls:
        assert Organisation.objects.bulk_update(three, ["employees"]) == 3
    assert requests_made(calls) == [("POST", "$batch")]
    for i, org in enumerate(three):
        record = crm.record(Organisation, str(org.cdms_pk))
        assert record["numberofemployees"] == 1000 + i
        assert record["telephone1"] != "+1 not sent"
        assert org.cdms_etag == record["@odata.etag"]
        crm.assert_in_sync(Organisation, str(org.cdms_pk))
        assert org.phone == "+1 not sent"  # still a change of the instance's own


def test_bulk_update_of_an_object_changed_remotely_is_a_conflict(crm, three):
    crm.change(CONTOSO, telephone1="+1 changed by someone else")
    stale = next(o for o in three if o.name == CONTOSO)
    row_before = Organisation.objects.skip_cdms().values().get(pk=stale.pk)
    for org in three:
        org.employees = 7
    with assertNumRemoteCalls(2) as calls, pytest.raises(BulkWriteError) as caught:
        Organisation.objects.bulk_update(three, ["employees"])
    # the 412 is read back: the record does not hold what was sent
    assert requests_made(calls) == [("POST", "$batch"), ("GET", "accounts")]
    [(obj, error)] = caught.value.failed
    assert obj is stale and isinstance(error, PreconditionFailed)
    assert Organisation.objects.skip_cdms().values().get(pk=stale.pk) == row_before
    record = crm.record(Organisation, str(stale.cdms_pk))
    assert record["numberofemployees"] != 7 and record["telephone1"] == "+1 changed by someone else"
    for org in three:
        if org is not stale:
            assert crm.record(Organisation, str(org.cdms_pk))["numberofemployees"] == 7
            crm.assert_in_sync(Organisation, str(org.cdms_pk))


def test_bulk_update_meeting_the_same_change_is_done(crm, three):
    crm.change(NORTHWIND, numberofemployees=55)
    for org in three:
        org.employees = 55
    with assertNumRemoteCalls(2):
        Organisation.objects.bulk_update(three, ["employees"])
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in three])


def test_bulk_update_computes_expressions_and_sends_the_values(crm, three):
    before = {o.pk: o.employees or 0 for o in three}
    for org in three:
        org.employees = F("employees") + 1 if org.employees is not None else 1
    with assertNumRemoteCalls(1):
        Organisation.objects.bulk_update(three, ["employees"])
    for org in three:
        assert org.employees == before[org.pk] + 1
        assert crm.record(Organisation, str(org.cdms_pk))["numberofemployees"] == org.employees


def test_bulk_update_of_local_only_fields_makes_no_request(crm):
    companies = [Company.objects.create(name=f"Noted {i}") for i in range(2)]
    for company in companies:
        company.notes = "kept here"
    with assertNumRemoteCalls(0):
        Company.objects.bulk_update(companies, ["notes"])
    assert Company.objects.skip_cdms().filter(notes="kept here").count() == 2


# qs.update() -------------------------------------------------------------------------------


def test_update_is_one_read_and_one_batch(crm, synced):
    rows = {o.cdms_pk: o.employees for o in Organisation.objects.skip_cdms().filter(uk_based=True)}
    assert len(rows) >= 2
    with assertNumRemoteCalls(2) as calls:
        count = Organisation.objects.filter(uk_based=True).update(employees=F("employees") + 10)
    assert count == len(rows)
    assert requests_made(calls) == [("GET", "accounts"), ("POST", "$batch")]
    for key, employees in rows.items():
        record = crm.record(Organisation, str(key))
        assert record["numberofemployees"] == (None if employees is None else employees + 10)
        crm.assert_in_sync(Organisation, str(key))


def test_update_reads_the_rows_fresh_first(crm, synced):
    crm.change(NORTHWIND, numberofemployees=100)
    Organisation.objects.filter(name=NORTHWIND).update(employees=F("employees") * 2)
    assert crm.record(Organisation, crm.key(NORTHWIND))["numberofemployees"] == 200
    crm.assert_in_sync(Organisation, crm.key(NORTHWIND))


def test_update_of_a_lookup_binds_it(crm, synced):
    acme = Organisation.objects.skip_cdms().get(name=ACME)
    with assertNumRemoteCalls(2):
        Contact.objects.filter(organisation__isnull=True).update(organisation=acme)
    for contact in Contact.objects.skip_cdms().filter(organisation=acme):
        crm.assert_in_sync(Contact, str(contact.cdms_pk))


def test_update_of_local_only_fields_is_one_read(crm):
    company = Company.objects.create(name="Local Notes Ltd")
    with assertNumRemoteCalls(1):
        assert Company.objects.filter(name="Local Notes Ltd").update(notes="n") == 1
    assert Company.objects.skip_cdms().get(pk=company.pk).notes == "n"


def test_update_of_a_row_without_a_record_is_local(crm):
    Organisation(name="Offline Ltd", employees=1).save(skip_cdms=True)
    Organisation.objects.create(name="Online Ltd", employees=1)
    with assertNumRemoteCalls(2):
        assert Organisation.objects.filter(name__endswith="line Ltd").update(employees=2) == 2
    assert set(
        Organisation.objects.skip_cdms().filter(employees=2).values_list("name", flat=True)
    ) == {
        "Offline Ltd",
        "Online Ltd",
    }
    assert crm.find("accounts", "name", "Offline Ltd") == []


def test_a_partial_update_reports_the_failures_and_keeps_both_sides_in_step(crm):
    """The CRM's column keeps 2 decimal places and 10 integer digits, the local one 4 and 15:
    a value the local database takes, the CRM refuses, for that row only."""
    samples = Sample.objects.bulk_create(
        [
            Sample(name=f"Amount {i}", rank=i, amount=amount)
            for i, amount in enumerate([1, 2, 50_000_000])
        ]
    )
    with assertNumRemoteCalls(2), pytest.raises(BulkWriteError) as caught:
        Sample.objects.filter(name__startswith="Amount").update(amount=F("amount") * 1000)
    [(row, _error)] = caught.value.failed
    assert row.name == "Amount 2"
    amounts = dict(Sample.objects.skip_cdms().values_list("name", "amount"))
    assert amounts == {"Amount 0": 1000, "Amount 1": 2000, "Amount 2": 50_000_000}
    crm.assert_all_in_sync(Sample, [s.cdms_pk for s in samples])


def test_an_update_every_row_of_which_fails_changes_nothing(crm):
    samples = Sample.objects.bulk_create([Sample(name="Big", rank=1, amount=50_000_000)])
    with pytest.raises(BulkWriteError):
        Sample.objects.filter(name="Big").update(amount=F("amount") * 1000)
    assert Sample.objects.skip_cdms().get().amount == 50_000_000
    crm.assert_in_sync(Sample, str(samples[0].cdms_pk))


def test_an_update_reading_other_rows_through_a_subquery_is_refused(crm, synced):
    biggest = Organisation.objects.filter(parent=OuterRef("pk")).values("employees")[:1]
    with assertNumRemoteCalls(0), pytest.raises(CDMSNotSupported, match="subquery"):
        Organisation.objects.filter(name=ACME).update(employees=Subquery(biggest))


def test_an_update_through_a_join_is_refused_as_django_refuses_it(crm, synced):
    with pytest.raises(FieldError, match="Joined field references"):
        Contact.objects.filter(last_name="Lovelace").update(first_name=F("organisation__name"))
    crm.assert_touched_in_sync()


def test_a_sliced_update_is_refused_as_django_refuses_it(crm, synced):
    with pytest.raises(TypeError, match="slice"):
        Organisation.objects.all()[:2].update(employees=1)
