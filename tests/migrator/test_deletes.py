"""``qs.delete()``, cascades between synced models and the admin's "delete selected", over
HTTP against the simulator: exact remote requests, both sides in step afterwards, conflicts
reported with both sides in step."""

from __future__ import annotations

import contextlib

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import migrator
from cdms_api.errors import BulkWriteError, PreconditionFailed
from core.models import Contact, Organisation
from migrator.testing import RemoteCallCounter, assertNumRemoteCalls
from tests.secondapp.models import Address, Company, Person
from tests.seeded import ACME, ALAN, WIDGETS

pytestmark = pytest.mark.usefixtures("bulk_ready")


def requests_made(counter) -> list[tuple[str, str]]:
    return [(c.method, c.path.rsplit("/", 1)[-1].split("(")[0]) for c in counter.calls]


@pytest.fixture
def doomed() -> list[Organisation]:
    return Organisation.objects.bulk_create([Organisation(name=f"Doomed {i}") for i in range(4)])


@pytest.fixture
def company() -> Company:
    """A company with two addresses, which ``on_delete=CASCADE`` deletes with it."""
    company = Company.objects.create(name="Cascading Ltd")
    Address.objects.bulk_create(
        [Address(name="Head office", company=company), Address(name="Depot", company=company)]
    )
    return company


def test_filter_delete_is_one_read_and_one_batch(crm, doomed):
    with assertNumRemoteCalls(2) as calls:
        deleted = Organisation.objects.filter(name__startswith="Doomed").delete()
    assert deleted == (4, {"core.Organisation": 4})
    assert requests_made(calls) == [("GET", "accounts"), ("POST", "$batch")]
    assert not Organisation.objects.skip_cdms().filter(name__startswith="Doomed").exists()
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in doomed])


def test_deleting_one_row_is_one_delete(crm, doomed):
    with assertNumRemoteCalls(2) as calls:
        Organisation.objects.filter(name="Doomed 0").delete()
    assert requests_made(calls) == [("GET", "accounts"), ("DELETE", "accounts")]
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in doomed])


def test_a_delete_that_unlinks_nothing_updates_nothing(crm, doomed):
    """``on_delete=SET_NULL`` with no row pointing at the one deleted: no ``UPDATE``."""
    [doomed_0, *_] = doomed
    with CaptureQueriesContext(connection) as captured, assertNumRemoteCalls(1):
        doomed_0.delete()
    statements = [q["sql"].split()[0].upper() for q in captured.captured_queries]
    assert "UPDATE" not in statements
    assert statements.count("DELETE") == 1
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in doomed])


def test_a_delete_unlinks_a_row_with_no_remote_key_too(crm, doomed):
    """A local-only row pointing at the row deleted is unlinked, though there is nothing of it
    to read again."""
    [doomed_0, *_] = doomed
    orphan = Organisation(name="Local only", parent=doomed_0)
    orphan.save(skip_cdms=True)
    doomed_0.delete()
    assert Organisation.objects.skip_cdms().get(pk=orphan.pk).parent_id is None


def test_the_rows_a_delete_unlinks_are_read_again(crm, synced):
    """``on_delete=SET_NULL``: the CRM clears the lookups itself, which changes the records;
    the contacts and subsidiaries of the organisations deleted are read again, one read per
    model, so their rows hold the new ETags (a later save is no conflict)."""
    with assertNumRemoteCalls(4) as calls:
        Organisation.objects.filter(name=ACME).delete()
    made = requests_made(calls)
    assert made[:2] == [("GET", "accounts"), ("DELETE", "accounts")]
    assert sorted(made[2:]) == [("GET", "accounts"), ("GET", "contacts")]
    crm.assert_all_in_sync(Contact, crm.all_keys(Contact))
    crm.assert_all_in_sync(Organisation, crm.all_keys(Organisation))
    widgets = Organisation.objects.skip_cdms().get(name=WIDGETS)
    assert widgets.parent_id is None
    widgets.employees = 3
    with assertNumRemoteCalls(1):
        widgets.save()


@pytest.mark.parametrize("block", [False, True], ids=["delete", "migrator.atomic"])
def test_a_delete_done_stands_when_reading_the_unlinked_rows_again_fails(
    crm, synced, cdms_simulator, caplog, block
):
    """The records are deleted: a read of the rows they unlinked that fails then (here, 500s
    past the retries) does not undo the delete locally. The rows are left to the next read."""
    acme = Organisation.objects.get(name=ACME)
    key = str(acme.cdms_pk)
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "times": None, "status": 500})
    with migrator.atomic() if block else contextlib.nullcontext():
        acme.delete()
    cdms_simulator.clear_faults()

    assert crm.record(Organisation, key) is None
    assert not Organisation.objects.skip_cdms().filter(cdms_pk=key).exists()
    widgets = Organisation.objects.skip_cdms().get(name=WIDGETS)
    assert widgets.parent_id is None
    assert "rows not read again after a remote write" in caplog.text
    list(Organisation.objects.filter(name=WIDGETS))  # the next read brings it in step
    crm.assert_all_in_sync(Organisation, crm.all_keys(Organisation))


def test_a_cascade_deletes_the_related_records_children_first(crm, company):
    addresses = list(Address.objects.skip_cdms().filter(company=company))
    with assertNumRemoteCalls(1) as calls:
        company.delete()
    assert requests_made(calls) == [("POST", "$batch")]
    assert crm.record(Company, str(company.cdms_pk)) is None
    crm.assert_all_in_sync(Address, [a.cdms_pk for a in addresses])
    assert not Address.objects.skip_cdms().exists()


def test_a_cascaded_record_already_gone_is_deleted(crm, company):
    """The CRM's own cascade (or another user) may have deleted a related record first."""
    head_office = Address.objects.skip_cdms().get(name="Head office")
    crm.client.delete("customeraddresses", head_office.cdms_pk)
    with assertNumRemoteCalls(2):
        Company.objects.filter(name="Cascading Ltd").delete()
    assert crm.record(Company, str(company.cdms_pk)) is None
    assert not Address.objects.skip_cdms().exists()


def test_a_conflict_in_a_cascade_keeps_both_sides_in_step(crm, company):
    """The depot changed remotely since it was read: its delete fails (412); the company's
    does not, and the CRM then clears the lookups of the depot and of the company's employee.
    The local side shows just that."""
    depot = Address.objects.skip_cdms().get(name="Depot")
    employee = Person.objects.create(surname="Employed", employer=company)  # SET_NULL
    crm.client.update("customeraddresses", depot.cdms_pk, {"city": "Changed elsewhere"})
    # the $batch, the 412 read back, then the depot and the employee read again
    with assertNumRemoteCalls(4), pytest.raises(BulkWriteError) as caught:
        company.delete()
    [(failed, error)] = caught.value.failed
    assert failed.pk == depot.pk and isinstance(error, PreconditionFailed)
    assert sorted(obj.name for obj in caught.value.done) == ["Cascading Ltd", "Head office"]
    assert crm.record(Company, str(company.cdms_pk)) is None
    row = Address.objects.skip_cdms().get(pk=depot.pk)
    assert (row.city, row.company_id) == ("Changed elsewhere", None)
    crm.assert_all_in_sync(Address, crm.all_keys(Address))
    assert not Company.objects.skip_cdms().filter(pk=company.pk).exists()
    assert Person.objects.skip_cdms().get(pk=employee.pk).employer_id is None
    crm.assert_in_sync(Person, str(employee.cdms_pk))


def test_a_delete_every_write_of_which_fails_deletes_nothing(crm, company):
    """Both addresses changed remotely since they were read: their deletes fail, and so the
    company's (the CRM refuses nothing there, but a changeset is not needed to keep the
    local side whole: everything is rolled back and the failures listed)."""
    for address in Address.objects.skip_cdms().all():
        crm.client.update("customeraddresses", address.cdms_pk, {"city": "Changed"})
    crm.client.update("accounts", company.cdms_pk, {"name": "Renamed elsewhere"})
    rows_before = sorted(Address.objects.skip_cdms().values_list("pk", "city"))
    with pytest.raises(BulkWriteError) as caught:
        company.delete()
    assert caught.value.done == [] and len(caught.value.failed) == 3
    assert sorted(Address.objects.skip_cdms().values_list("pk", "city")) == rows_before
    assert Company.objects.skip_cdms().filter(pk=company.pk).exists()
    assert company.pk is not None
    assert crm.record(Company, str(company.cdms_pk))["name"] == "Renamed elsewhere"


# The admin ------------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("admin", "admin@example.com", "secret")
    client.force_login(user)
    return client


def test_the_admin_delete_selected_action_deletes_the_records(crm, staff, doomed):
    """Django's own action: a confirmation page listing what goes, then the deletion. The
    admin reads the rows several times on its own (the change list, the objects to delete,
    their number); the deletion itself is its read and one $batch."""
    url = reverse("admin:core_organisation_changelist")
    chosen = [str(o.pk) for o in doomed[:3]]
    confirm = staff.post(url, {"action": "delete_selected", ACTION_CHECKBOX_NAME: chosen})
    assert confirm.status_code == 200 and b"Are you sure" in confirm.content
    with RemoteCallCounter() as calls:
        done = staff.post(
            url, {"action": "delete_selected", ACTION_CHECKBOX_NAME: chosen, "post": "yes"}
        )
    assert done.status_code == 302
    assert [(c.method, c.path.rsplit("/", 1)[-1]) for c in calls.calls if c.method != "GET"] == [
        ("POST", "$batch")
    ]
    assert set(Organisation.objects.skip_cdms().filter(name__startswith="Doomed")) == {doomed[3]}
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in doomed])


def test_model_admin_delete_queryset_deletes_the_records(crm, doomed):
    model_admin = admin.site._registry[Organisation]
    request = RequestFactory().post("/")
    with assertNumRemoteCalls(2):
        model_admin.delete_queryset(request, Organisation.objects.filter(name__startswith="Doomed"))
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in doomed])


def test_the_admin_deletes_one_contact(crm, staff, synced):
    alan = Contact.objects.skip_cdms().get(first_name="Alan")
    url = reverse("admin:core_contact_delete", args=[alan.pk])
    assert staff.get(url).status_code == 200
    assert staff.post(url, {"post": "yes"}).status_code == 302
    assert crm.record(Contact, crm.key(ALAN)) is None
    assert not Contact.objects.skip_cdms().filter(pk=alan.pk).exists()
