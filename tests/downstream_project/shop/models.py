from django.db import models

from migrator.mapping import Lookup
from migrator.models import CDMSModel


class Customer(CDMSModel):
    name = models.CharField(max_length=160)
    employees = models.IntegerField(null=True, blank=True)

    class CDMS:
        entity_set = "accounts"
        fields = {"name": "name", "employees": "numberofemployees"}


class Person(CDMSModel):
    last_name = models.CharField(max_length=50)
    customer = models.ForeignKey(Customer, null=True, on_delete=models.SET_NULL)

    class CDMS:
        entity_set = "contacts"
        fields = {
            "last_name": "lastname",
            "customer": Lookup("parentcustomerid_account", value="_parentcustomerid_value"),
        }
