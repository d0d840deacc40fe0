"""Related managers write through: ``add``, ``remove``, ``set``, ``clear`` are Django's, run
as ``qs.update()`` of the lookup (one read and one ``$batch``), ``create`` as a save."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from core.models import Contact, Organisation
from migrator.testing import assertNumRemoteCalls
from tests.seeded import ACME, ADA, ALAN, GRACE, KATHERINE, NORTHWIND

pytestmark = pytest.mark.usefixtures("bulk_ready")


def methods(counter) -> list[str]:
    return [f"{c.method} {c.path.rsplit('/', 1)[-1].split('(')[0]}" for c in counter.calls]


@pytest.fixture
def people(synced) -> dict[str, Contact]:
    return {str(c): c for c in Contact.objects.skip_cdms().all()}


@pytest.fixture
def acme(synced) -> Organisation:
    return Organisation.objects.skip_cdms().get(name=ACME)


def bound_to(crm, contact: Contact) -> str | None:
    return crm.record(Contact, str(contact.cdms_pk))["_parentcustomerid_value"]


def test_add_binds_the_lookup_remotely(crm, acme, people):
    grace, katherine = people[GRACE], people[KATHERINE]
    with assertNumRemoteCalls(2) as calls:
        acme.contacts.add(grace, katherine)
    assert methods(calls) == ["GET contacts", "POST $batch"]
    for contact in (grace, katherine):
        assert bound_to(crm, contact) == str(acme.cdms_pk)
        crm.assert_in_sync(Contact, str(contact.cdms_pk))
    assert set(acme.contacts.skip_cdms()) >= {grace, katherine}


def test_remove_and_clear_unbind_it(crm, acme, people):
    ada, grace, katherine = people[ADA], people[GRACE], people[KATHERINE]
    acme.contacts.add(grace, katherine)
    with assertNumRemoteCalls(2) as calls:
        acme.contacts.remove(ada)
    assert methods(calls) == ["GET contacts", "POST $batch"]
    assert bound_to(crm, ada) is None
    with assertNumRemoteCalls(2):
        acme.contacts.clear()
    assert bound_to(crm, grace) is None and bound_to(crm, katherine) is None
    crm.assert_all_in_sync(Contact, [ada.cdms_pk, grace.cdms_pk, katherine.cdms_pk])
    assert not acme.contacts.skip_cdms().exists()


def test_set_is_django_s_remove_and_add(crm, acme, people):
    ada, grace, katherine = people[ADA], people[GRACE], people[KATHERINE]
    with assertNumRemoteCalls(3) as calls:  # what is there (Ada), then add()
        acme.contacts.set([ada, grace, katherine])
    assert methods(calls) == ["GET contacts", "GET contacts", "POST $batch"]
    with assertNumRemoteCalls(5) as calls:  # what is there, then remove() and add()
        acme.contacts.set([people[ALAN], katherine])
    assert methods(calls) == ["GET contacts", *["GET contacts", "POST $batch"] * 2]
    assert {c.cdms_pk for c in acme.contacts.skip_cdms()} == {
        people[ALAN].cdms_pk,
        katherine.cdms_pk,
    }
    assert bound_to(crm, ada) is None and bound_to(crm, grace) is None
    assert bound_to(crm, katherine) == str(acme.cdms_pk)
    crm.assert_all_in_sync(Contact, crm.all_keys(Contact))


def test_create_through_the_manager_is_one_create(crm, acme):
    with assertNumRemoteCalls(1) as calls:
        made = acme.contacts.create(last_name="Created Here")
    assert methods(calls) == ["POST contacts"]
    assert bound_to(crm, made) == str(acme.cdms_pk)
    crm.assert_in_sync(Contact, str(made.cdms_pk))


def test_add_without_bulk_saves_each_object(crm, acme, people):
    with assertNumRemoteCalls(1) as calls:
        acme.contacts.add(people[GRACE], bulk=False)
    assert methods(calls) == ["PATCH contacts"]
    assert bound_to(crm, people[GRACE]) == str(acme.cdms_pk)


def test_add_takes_the_lookup_from_another_target(crm, acme, people):
    """``parentcustomerid`` points at an account or a contact: a contact under another
    contact, added to an organisation, is bound to the organisation, and the local row loses
    its parent contact as the CRM's record does."""
    katherine, grace = people[KATHERINE], people[GRACE]
    katherine.parent_contact = grace
    katherine.save()
    acme.contacts.add(katherine)
    row = Contact.objects.skip_cdms().get(pk=katherine.pk)
    assert (row.organisation_id, row.parent_contact_id) == (acme.pk, None)
    crm.assert_in_sync(Contact, str(katherine.cdms_pk))


def test_async_add(crm, synced, people):
    northwind = Organisation.objects.skip_cdms().get(name=NORTHWIND)
    async_to_sync(northwind.contacts.aadd)(people[KATHERINE])
    assert bound_to(crm, people[KATHERINE]) == str(northwind.cdms_pk)
