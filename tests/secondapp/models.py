"""A second app with models of its own over the same CRM, as another team would write them:
a number that cannot be null (with a default), fields that exist only locally, foreign keys
with ``SET_NULL``, and other names than the example app's."""

from django.db import models

from migrator.mapping import Lookup
from migrator.models import CDMSModel


class Company(CDMSModel):
    name = models.CharField(max_length=160)
    headcount = models.IntegerField(default=0)  # the CRM's null is stored as 0
    turnover = models.DecimalField(max_digits=19, decimal_places=4, null=True)
    incorporated = models.DateField(null=True)
    notes = models.TextField(blank=True)  # local only
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="branches"
    )

    class CDMS:
        entity_set = "accounts"
        fields = {
            "name": "name",
            "headcount": "numberofemployees",
            "turnover": "revenue",
            "incorporated": "new_foundedon",
            "parent": "parentaccountid",
        }

    def __str__(self) -> str:
        return self.name


class Person(CDMSModel):
    surname = models.CharField(max_length=50)
    given_name = models.CharField(max_length=50, blank=True)
    born = models.DateField(null=True)
    nickname = models.CharField(max_length=50, blank=True)  # local only
    employer = models.ForeignKey(
        Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="staff"
    )

    class CDMS:
        entity_set = "contacts"
        fields = {
            "surname": "lastname",
            "given_name": "firstname",
            "born": "birthdate",
            "employer": Lookup("parentcustomerid_account", value="_parentcustomerid_value"),
        }

    def __str__(self) -> str:
        return f"{self.given_name} {self.surname}".strip()


class Sample(CDMSModel):
    """A column of every type, to try values at the limits. ``amount`` keeps more decimal
    places locally than the CRM's column, which rounds to 2; ``rank`` cannot be null and
    has no default (a record without a rank cannot be stored)."""

    name = models.CharField(max_length=100)
    rank = models.IntegerField()
    count = models.IntegerField(null=True)
    big = models.BigIntegerField(null=True)
    amount = models.DecimalField(max_digits=19, decimal_places=4, null=True)
    price = models.DecimalField(max_digits=19, decimal_places=4, null=True)
    ratio = models.FloatField(null=True)
    flag = models.BooleanField(null=True)
    day = models.DateField(null=True)
    moment = models.DateTimeField(null=True)
    clock = models.TimeField(null=True)

    class CDMS:
        entity_set = "new_samples"
        fields = {
            "name": "new_name",
            "rank": "new_rank",
            "count": "new_count",
            "big": "new_big",
            "amount": "new_amount",
            "price": "new_price",
            "ratio": "new_ratio",
            "flag": "new_flag",
            "day": "new_day",
            "moment": "new_moment",
            "clock": "new_clock",
        }

    def __str__(self) -> str:
        return self.name


class Address(CDMSModel):
    """A company's address, deleted with its company: ``on_delete=CASCADE`` between synced
    models deletes the records too."""

    name = models.CharField(max_length=200)
    city = models.CharField(max_length=80, blank=True)
    company = models.ForeignKey(
        Company, null=True, on_delete=models.CASCADE, related_name="addresses"
    )

    class CDMS:
        entity_set = "customeraddresses"
        key = "customeraddressid"  # not what Dataverse's naming convention guesses
        logical_name = "customeraddress"
        fields = {
            "name": "name",
            "city": "city",
            "company": Lookup("parentid_account", value="_parentid_value"),
        }

    def __str__(self) -> str:
        return self.name
