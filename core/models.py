"""The example app: organisations and their contacts, synced with the CRM's accounts and
contacts."""

from django.db import models

from migrator.mapping import Lookup
from migrator.models import CDMSModel


class Organisation(CDMSModel):
    name = models.CharField(max_length=160)
    website = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    employees = models.IntegerField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    uk_based = models.BooleanField(null=True, blank=True)
    founded_on = models.DateField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="subsidiaries"
    )

    class CDMS:
        entity_set = "accounts"
        fields = {
            "name": "name",
            "website": "websiteurl",
            "phone": "telephone1",
            "employees": "numberofemployees",
            "revenue": "revenue",
            "uk_based": "new_ukbased",
            "founded_on": "new_foundedon",
            "parent": "parentaccountid",
        }

    def __str__(self) -> str:
        return self.name


class Contact(CDMSModel):
    first_name = models.CharField(max_length=50, blank=True)
    last_name = models.CharField(max_length=50)
    email = models.EmailField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    # the CRM's parent customer is an account or a contact: one foreign key for each
    organisation = models.ForeignKey(
        Organisation, null=True, blank=True, on_delete=models.SET_NULL, related_name="contacts"
    )
    parent_contact = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="child_contacts"
    )

    class CDMS:
        entity_set = "contacts"
        fields = {
            "first_name": "firstname",
            "last_name": "lastname",
            "email": "emailaddress1",
            "birth_date": "birthdate",
            "organisation": Lookup("parentcustomerid_account", value="_parentcustomerid_value"),
            "parent_contact": Lookup("parentcustomerid_contact", value="_parentcustomerid_value"),
        }

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
