"""A lookup with several targets: a contact's parent customer is an account or a contact, as
in Dataverse. The example maps it as one foreign key per target (``Contact.organisation`` and
``Contact.parent_contact``), each through its own navigation property; reads tell them apart
by the ``lookuplogicalname`` annotation, writes bind through the navigation of the one set."""

from __future__ import annotations

import pytest

from cdms_api.keys import bind
from core.models import Contact, Organisation
from migrator.testing import assertNumRemoteCalls
from tests.seeded import ACME, ADA, GRACE, KATHERINE

people = Contact.objects


@pytest.fixture
def minor(crm, synced) -> str:
    """A contact whose parent customer is a contact (Ada Lovelace)."""
    record = crm.client.create(
        "contacts",
        {
            "firstname": "Byron",
            "lastname": "Minor",
            "parentcustomerid_contact@odata.bind": bind("contacts", crm.key(ADA)),
        },
    )
    crm.keys["Byron Minor"] = record["contactid"]
    return record["contactid"]


def test_a_contact_whose_parent_is_a_contact_reads_into_the_contact_foreign_key(crm, minor):
    with assertNumRemoteCalls(1):
        child = people.get(cdms_pk=minor)
    assert child.organisation is None
    assert child.parent_contact.last_name == "Lovelace"
    assert [c.first_name for c in people.get(first_name="Ada").child_contacts.all()] == ["Byron"]
    crm.assert_in_sync(Contact, minor)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"organisation__isnull": True}, {"Byron Minor", KATHERINE}),
        (
            {"organisation__isnull": False},
            {ADA, "Alan Turing", "Seán O'Brien", GRACE, "Smith Smith"},
        ),
        ({"parent_contact__isnull": False}, {"Byron Minor"}),
        ({"parent_contact__last_name": "Lovelace"}, {"Byron Minor"}),
        ({"organisation__name": ACME}, {ADA}),
    ],
    ids=str,
)
def test_conditions_on_either_foreign_key(crm, minor, condition, expected):
    query = people.filter(**condition)
    assert {str(c) for c in query} == expected
    assert {str(c) for c in people.skip_cdms().filter(**condition)} == expected


def test_saving_binds_through_the_navigation_of_the_foreign_key_set(crm, minor):
    grace = people.get(first_name="Grace")
    grace.organisation = None
    grace.parent_contact = people.get(first_name="Ada")
    with assertNumRemoteCalls(1):
        grace.save()
    record = crm.client.get("contacts", grace.cdms_pk)
    assert record["_parentcustomerid_value"] == str(crm.key(ADA))
    assert record["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    crm.assert_in_sync(Contact, grace.cdms_pk)

    grace.parent_contact = None  # neither set: the lookup is cleared, once
    grace.save()
    assert crm.client.get("contacts", grace.cdms_pk)["_parentcustomerid_value"] is None


def test_creating_a_contact_under_a_contact(crm, synced):
    ada = people.get(first_name="Ada")
    child = Contact.objects.create(last_name="Child", parent_contact=ada)
    record = crm.client.get("contacts", child.cdms_pk)
    assert record["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "contact"
    assert people.skip_cdms().get(pk=child.pk).parent_contact_id == ada.pk


def test_two_foreign_keys_to_one_lookup_are_no_mapping_error():
    assert Contact.cdms.errors == []
    assert Organisation.cdms.logical_name == "account"
