"""``migrator.admin.CDMSModelAdmin`` through Django's test client, over HTTP against the
simulator: the remote requests of the change list, the edit and change pages, the CRM's
refusals on the form, delete selected, the refresh action and the resync button; the admin
of ``SyncState``."""

from __future__ import annotations

import contextlib

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.urls import reverse

from cdms_api.keys import bind
from core import celery_app
from core.models import Organisation
from migrator import remote
from migrator.state import SyncState
from migrator.testing import RemoteCallCounter, assertNumRemoteCalls
from tests.resync_support import load, require_redis, resync_settings
from tests.seeded import ACME, ACME_KEY, ALL, NORTHWIND

pytestmark = pytest.mark.usefixtures("bulk_ready")

CHANGELIST = "admin:core_organisation_changelist"
#: every delete of an account answered 503
OUTAGE = {"method": "DELETE", "path": "/accounts", "status": 503, "times": None}


@pytest.fixture
def staff(client):
    User.objects.create_superuser("admin", "admin@example.com", "secret")
    client.login(username="admin", password="secret")
    return client


@pytest.fixture
def subsidiaries(cdms_simulator) -> list[str]:
    """100 accounts whose parent is Acme Holdings, created behind the ORM's back."""
    parent = bind("accounts", ACME_KEY)
    return load(
        cdms_simulator,
        "accounts",
        [{"name": f"Subsidiary {i:03d}", "parentaccountid@odata.bind": parent} for i in range(100)],
    )


def change_url(org: Organisation) -> str:
    return reverse("admin:core_organisation_change", args=[org.pk])


def form_data(response, **changes) -> dict:
    """What the browser posts back for the change form the response shows, with changes."""
    form = response.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data.update(changes)
    return {name: str(value) for name, value in data.items() if value is not None}


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# The change list ------------------------------------------------------------------------------


def test_a_changelist_page_with_the_parents_names_is_one_read(staff, subsidiaries):
    with assertNumRemoteCalls(1) as calls:
        page = staff.get(reverse(CHANGELIST))
    assert page.status_code == 200
    read = calls.calls[0]
    assert read.params["$expand"].startswith("parentaccountid(")
    assert read.params["$orderby"] == "name"  # the admin's ordering, once
    assert page.context["cl"].result_count == 100 + len(ALL)
    shown = page.context["cl"].result_list
    assert len(shown) == 100  # list_per_page
    assert all(org.parent.name == ACME for org in shown if org.name.startswith("Subsidiary"))
    assert page.content.count(ACME.encode()) >= 90


def test_the_next_page_is_one_read(staff, subsidiaries):
    with assertNumRemoteCalls(1):
        page = staff.get(reverse(CHANGELIST), {"p": 2})
    assert len(page.context["cl"].result_list) == len(ALL)


def test_search_is_translated_to_contains(staff, subsidiaries):
    with assertNumRemoteCalls(1) as calls:
        page = staff.get(reverse(CHANGELIST), {"q": "subsidiary 04"})
    # each word in any search field (on PostgreSQL with the letters case folds to)
    words = calls.calls[0].params["$filter"].split(" and ")
    assert words[0].startswith("(contains(name,'") and "or contains(websiteurl," in words[0]
    assert words[1] == "(contains(name,'04') or contains(websiteurl,'04'))"
    assert {o.name for o in page.context["cl"].result_list} == {
        f"Subsidiary {i:03d}" for i in (4, *range(40, 50))
    }


def test_a_list_filter_is_a_remote_filter(staff):
    with assertNumRemoteCalls(1) as calls:
        page = staff.get(reverse(CHANGELIST), {"uk_based__exact": "1"})
    assert calls.calls[0].params["$filter"] == "new_ukbased eq true"
    assert all(o.uk_based for o in page.context["cl"].result_list)


def test_ordering_is_a_remote_orderby(staff):
    with assertNumRemoteCalls(1) as calls:
        page = staff.get(reverse(CHANGELIST), {"o": "-2"})  # employees, descending
    assert calls.calls[0].params["$orderby"] == "numberofemployees desc,name"
    employees = [o.employees for o in page.context["cl"].result_list if o.employees is not None]
    assert employees == sorted(employees, reverse=True)


def test_an_outage_shows_the_local_copy_under_a_warning(staff, synced, cdms_simulator):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "status": 503, "times": None})
    page = staff.get(reverse(CHANGELIST))
    cdms_simulator.clear_faults()
    assert page.status_code == 200
    assert {o.name for o in page.context["cl"].result_list} == ALL
    [warning] = messages_of(page)
    assert warning.startswith("The CRM was not read, so this list is the local copy")


def test_more_records_than_a_read_brings_show_the_local_copy(staff, subsidiaries, settings):
    settings.CDMS = {**settings.CDMS, "MAX_SYNC_ROWS": 50}
    remote.reset()
    page = staff.get(reverse(CHANGELIST))
    assert page.status_code == 200
    [warning] = messages_of(page)
    assert "More than 50 accounts records match" in warning


def test_the_contacts_changelist_is_one_read(staff, synced):
    with assertNumRemoteCalls(1) as calls:
        page = staff.get(reverse("admin:core_contact_changelist"), {"organisation__isempty": "0"})
    assert calls.calls[0].params["$expand"].startswith("parentcustomerid_account(")
    assert {str(c.organisation) for c in page.context["cl"].result_list} >= {ACME}


def test_a_changes_backed_changelist_is_one_request(cdms_simulator, settings, subsidiaries):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator, READS="changes")
    remote.reset()
    assert Organisation.objects.count() == 100 + len(ALL)  # the first read fills the table
    User.objects.create_superuser("admin", "admin@example.com", "secret")
    from django.test import Client

    client = Client()
    client.login(username="admin", password="secret")
    with assertNumRemoteCalls(1) as calls:
        page = client.get(reverse(CHANGELIST), {"q": "subsidiary"})
    assert "deltatoken" in calls.calls[0].url + str(calls.calls[0].params)
    assert page.context["cl"].result_count == 100


# Editing --------------------------------------------------------------------------------------


@pytest.fixture
def northwind() -> Organisation:
    return Organisation.objects.get(name=NORTHWIND)


def test_the_change_page_shows_the_crm_fields_read_only(staff, northwind):
    with assertNumRemoteCalls(1):  # the record, by key
        page = staff.get(change_url(northwind))
    form = page.context["adminform"].form
    assert "cdms_pk" not in form.fields and "name" in form.fields
    assert form["cdms_version"].value() == northwind.cdms_etag
    assert str(northwind.cdms_pk).encode() in page.content
    assert b"Refresh from the CRM" in page.content


def test_a_save_writes_through(staff, crm, northwind):
    page = staff.get(change_url(northwind))
    saved = staff.post(change_url(northwind), form_data(page, employees=4321))
    assert saved.status_code == 302
    assert crm.record(Organisation, str(northwind.cdms_pk))["numberofemployees"] == 4321
    crm.assert_in_sync(Organisation, str(northwind.cdms_pk))


def refused(staff, northwind, page, **changes):
    """Post the form with changes; the answer is the form again, the local row unchanged."""
    before = Organisation.objects.skip_cdms().get(pk=northwind.pk)
    answer = staff.post(change_url(northwind), form_data(page, **changes))
    assert answer.status_code == 200
    form = answer.context["adminform"].form
    for name, value in changes.items():
        assert form[name].value() == str(value)  # the user's input is kept
    after = Organisation.objects.skip_cdms().get(pk=northwind.pk)
    assert (after.employees, after.cdms_etag, after.modified) == (
        before.employees,
        before.cdms_etag,
        before.modified,
    )
    return form.non_field_errors()[0]


def test_a_validation_error_shows_the_crms_message(staff, crm, cdms_simulator, northwind):
    page = staff.get(change_url(northwind))
    cdms_simulator.add_faults(
        {
            "method": "PATCH",
            "path": "/accounts",
            "status": 400,
            "body": {"error": {"code": "0x80040265", "message": "Employees must be under 1000"}},
        }
    )
    error = refused(staff, northwind, page, employees=5000)
    assert "The CRM refused the change: Employees must be under 1000" in error
    assert crm.record(Organisation, str(northwind.cdms_pk))["numberofemployees"] != 5000


def test_a_conflict_offers_to_reload(staff, crm, northwind):
    page = staff.get(change_url(northwind))
    crm.change(NORTHWIND, numberofemployees=77)  # another user, meanwhile
    error = refused(staff, northwind, page, employees=88)
    assert "changed in the CRM after you opened it" in error
    assert f'href="{change_url(northwind)}"' in error
    assert crm.record(Organisation, str(northwind.cdms_pk))["numberofemployees"] == 77
    reloaded = staff.get(change_url(northwind))
    assert reloaded.context["adminform"].form["employees"].value() == 77
    saved = staff.post(change_url(northwind), form_data(reloaded, employees=88))
    assert saved.status_code == 302
    assert crm.record(Organisation, str(northwind.cdms_pk))["numberofemployees"] == 88


def test_an_outage_keeps_the_input(staff, crm, cdms_simulator, northwind):
    page = staff.get(change_url(northwind))
    cdms_simulator.add_faults({"method": "*", "path": "/accounts", "status": 503, "times": None})
    error = refused(staff, northwind, page, employees=99)
    assert "The CRM is unavailable; nothing was saved" in error
    cdms_simulator.clear_faults()
    assert crm.record(Organisation, str(northwind.cdms_pk))["numberofemployees"] != 99


def test_an_outage_opens_the_change_page_on_the_local_copy(staff, cdms_simulator, northwind):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "status": 503, "times": None})
    page = staff.get(change_url(northwind))
    cdms_simulator.clear_faults()
    assert page.status_code == 200
    assert page.context["original"].name == northwind.name
    [warning] = messages_of(page)
    assert warning.startswith("The CRM was not read, so this page shows the local copy")


def test_a_refused_add_keeps_the_input(staff, crm, cdms_simulator):
    page = staff.get(reverse("admin:core_organisation_add"))
    cdms_simulator.add_faults(
        {
            "method": "POST",
            "path": "/accounts",
            "status": 400,
            "body": {"error": {"code": "0x80040265", "message": "Names must be unique"}},
        }
    )
    answer = staff.post(reverse("admin:core_organisation_add"), form_data(page, name="Newco"))
    assert answer.status_code == 200
    form = answer.context["adminform"].form
    assert form["name"].value() == "Newco"
    assert "The CRM refused the change: Names must be unique" in form.non_field_errors()[0]
    assert not Organisation.objects.skip_cdms().filter(name="Newco").exists()
    assert crm.find("accounts", "name", "Newco") == []


def test_adding_an_organisation_creates_the_record(staff, crm):
    page = staff.get(reverse("admin:core_organisation_add"))
    added = staff.post(reverse("admin:core_organisation_add"), form_data(page, name="Newco"))
    assert added.status_code == 302
    newco = Organisation.objects.skip_cdms().get(name="Newco")
    crm.assert_in_sync(Organisation, str(newco.cdms_pk))


# Deleting -------------------------------------------------------------------------------------


def test_delete_selected_deletes_remotely(staff, crm, subsidiaries):
    chosen = list(Organisation.objects.filter(name__in=["Subsidiary 001", "Subsidiary 002"]))
    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [o.pk for o in chosen]}
    assert b"Are you sure" in staff.post(reverse(CHANGELIST), data).content
    with RemoteCallCounter() as calls:
        done = staff.post(reverse(CHANGELIST), {**data, "post": "yes"}, follow=True)
    assert [c.method for c in calls.calls if c.method != "GET"] == ["POST"]  # one $batch
    assert "Successfully deleted 2 organisations." in messages_of(done)
    assert all(crm.record(Organisation, str(o.cdms_pk)) is None for o in chosen)
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in chosen])


def test_a_refused_delete_selected_shows_the_crms_message(staff, crm, cdms_simulator):
    northwind = Organisation.objects.get(name=NORTHWIND)
    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [northwind.pk], "post": "yes"}
    cdms_simulator.add_faults(OUTAGE)
    done = staff.post(reverse(CHANGELIST), data, follow=True)
    cdms_simulator.clear_faults()
    assert done.status_code == 200
    assert any("The CRM is unavailable" in m for m in messages_of(done))
    assert crm.record(Organisation, str(northwind.cdms_pk)) is not None
    crm.assert_in_sync(Organisation, str(northwind.cdms_pk))


def test_a_refused_delete_shows_the_crms_message(staff, crm, cdms_simulator, northwind):
    url = reverse("admin:core_organisation_delete", args=[northwind.pk])
    cdms_simulator.add_faults(OUTAGE)
    done = staff.post(url, {"post": "yes"}, follow=True)
    cdms_simulator.clear_faults()
    assert done.redirect_chain[-1][0] == change_url(northwind)
    assert any("The CRM is unavailable" in m for m in messages_of(done))
    crm.assert_in_sync(Organisation, str(northwind.cdms_pk))


# The actions ----------------------------------------------------------------------------------


def test_refresh_selected_is_one_read_by_key(staff, crm, synced):
    """Django builds the change list before it runs an action (its one read); the action
    reads the selected records by key."""
    chosen = Organisation.objects.skip_cdms().filter(name__in=[ACME, NORTHWIND])
    crm.change(NORTHWIND, numberofemployees=1234)
    data = {"action": "refresh_from_crm", ACTION_CHECKBOX_NAME: [o.pk for o in chosen]}
    with assertNumRemoteCalls(2) as calls:
        done = staff.post(reverse(CHANGELIST), data)
    assert calls.calls[1].params["$filter"].startswith("Microsoft.Dynamics.CRM.In(")
    assert done.status_code == 302
    assert "2 organisations refreshed from the CRM." in messages_of(staff.get(done.url))
    crm.assert_touched_in_sync()


def test_the_resync_button_queues_a_resync(staff, cdms_simulator, settings):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator)
    remote.reset()
    url = reverse("admin:core_organisation_resync")
    assert staff.get(url).status_code == 405
    celery_app.conf.task_always_eager = True  # the task runs here, at once
    try:
        done = staff.post(url, follow=True)
    finally:
        celery_app.conf.task_always_eager = False
    assert any("A resync of the organisations is queued" in m for m in messages_of(done))
    state = SyncState.of(Organisation)
    assert state.status == SyncState.Status.OK and state.created == len(ALL)
    states = staff.get(reverse("admin:migrator_syncstate_changelist"))
    assert b"core.Organisation" in states.content
    assert b"0:00:0" in states.content  # the lag: the run just ended


def test_the_resync_button_says_when_the_broker_cannot_be_reached(staff, cdms_simulator, settings):
    settings.CDMS = resync_settings(cdms_simulator)
    with broker_at("redis://127.0.0.1:1/0"):  # nothing listens on port 1
        done = staff.post(reverse("admin:core_organisation_resync"), follow=True)
    assert done.status_code == 200
    assert any("the Celery broker cannot be reached" in m for m in messages_of(done))


@contextlib.contextmanager
def broker_at(url: str):
    """The example project's Celery app publishing to ``url`` through pools of its own; the
    app's pools, which other tests' workers hold, are put back untouched."""
    saved = celery_app.conf.broker_url, celery_app._pool, celery_app.amqp._producer_pool
    celery_app.conf.broker_url = url
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        celery_app.pool.force_close_all()
        celery_app.conf.broker_url, celery_app._pool, celery_app.amqp._producer_pool = saved
