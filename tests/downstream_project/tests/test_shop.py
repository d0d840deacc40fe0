"""The project's own tests: the ORM against the simulator, through the library's plugin."""

import pytest
from django.core.management import call_command
from shop.models import Customer, Person

pytestmark = pytest.mark.django_db


def test_a_filter_reads_the_crm(cdms_simulator_settings, assert_num_remote_calls):
    with assert_num_remote_calls(1):
        names = sorted(c.name for c in Customer.objects.filter(name__startswith="Acme"))
    assert names == ["Acme Holdings", "Acme Widgets"]


def test_writes_go_to_the_crm_first(cdms_simulator_settings):
    customer = Customer.objects.create(name="Wheelwrights Ltd", employees=12)
    Person.objects.create(last_name="Wright", customer=customer)
    record = cdms_simulator_settings.session().get(
        f"{cdms_simulator_settings.base_url}contacts?$filter=lastname eq 'Wright'"
    )
    [contact] = record.json()["value"]
    assert contact["_parentcustomerid_value"] == str(customer.cdms_pk)
    assert Person.objects.skip_cdms().get().customer == customer


def test_the_settings_pass_the_system_checks(cdms_simulator_settings):
    call_command("check", fail_level="WARNING")


def test_cdms_ping_reaches_every_mapped_entity_set(cdms_simulator_settings, capsys):
    call_command("cdms_ping")
    report = capsys.readouterr().out
    assert "readable (shop.Customer: a record read)" in report
    assert "readable (shop.Person: a record read)" in report
    assert "all well: 4 steps" in report
