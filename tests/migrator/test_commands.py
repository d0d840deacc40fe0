"""The management commands: ``cdms_resync`` (foreground with its bar, and ``--async``),
``cdms_status``, ``cdms_check`` and ``cdms_inspect``, against the simulator; and the admin of
``SyncState``."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test.utils import isolate_apps

from core.models import Organisation
from migrator import remote
from migrator.remote_check import check_models
from migrator.state import SyncState
from tests.resync_support import require_redis, resync_settings
from tests.seeded import ACCOUNT_PROPERTIES


@pytest.fixture(autouse=True)
def cdms_resync(cdms_simulator, settings):
    require_redis()
    settings.CDMS = resync_settings(cdms_simulator)
    remote.reset()
    return cdms_simulator


def command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def metadata_text(simulator) -> str:
    session = simulator.session()
    return session.get(simulator.base_url + "$metadata").text


# cdms_resync ------------------------------------------------------------------------------------
def test_cdms_resync_shows_a_bar_and_ends_with_the_counts_per_model():
    out, err = command("cdms_resync", "--full")
    assert out.splitlines()[0].startswith("core.Organisation: full in ")
    assert out.splitlines()[0].endswith(": 10 created, 0 updated, 0 deleted")
    assert out.splitlines()[1].endswith(": 6 created, 0 updated, 0 deleted")
    assert "core.Organisation: 100%" in err and "10/10" in err and "records/s" in err
    out, _ = command("cdms_resync", "core.Contact")
    assert out.startswith("core.Contact: incremental in ")


def test_cdms_resync_exits_non_zero_when_a_resync_fails(cdms_simulator):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 400})
    out = StringIO()
    with pytest.raises(CommandError, match="some resyncs failed"):
        call_command("cdms_resync", stdout=out, stderr=StringIO())
    assert "core.Organisation: failed: BadRequest: An unexpected error occurred" in out.getvalue()
    assert "core.Contact: full in" in out.getvalue()  # the others still ran


def test_cdms_resync_refuses_a_model_that_is_not_synced():
    with pytest.raises(CommandError, match=r"auth\.User is not a synced model"):
        command("cdms_resync", "auth.User")
    with pytest.raises(CommandError, match="doesn't have a 'Nothing' model"):
        command("cdms_resync", "core.Nothing")


@pytest.mark.django_db(transaction=True)
def test_cdms_resync_async_queues_on_the_workers(worker):
    out, _ = command("cdms_resync", "core.Organisation", "--async")
    assert out.startswith("core.Organisation: queued (task ")
    deadline = time.monotonic() + 60
    while not SyncState.objects.filter(model="core.Organisation", status="ok").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert Organisation.objects.skip_cdms().count() == 10


# cdms_status ------------------------------------------------------------------------------------
def test_cdms_status_shows_each_model_at_a_glance(cdms_simulator):
    out, _ = command("cdms_status")
    assert out.splitlines()[1].split() == ["core.Organisation", "-", "never", "synced"]
    command("cdms_resync")
    cdms_simulator.add_faults({"method": "GET", "path": "/contacts$", "status": 400})
    with pytest.raises(CommandError):
        command("cdms_resync", "core.Contact")
    out, _ = command("cdms_status")
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["model", "mode", "status", "run"]
    assert lines[1].startswith("core.Organisation  change tracking  in step")
    assert lines[1].endswith("+10 ~0 -0")
    assert "core.Contact       change tracking  failed" in lines[2]
    assert "core.Contact: BadRequest: An unexpected error occurred" in out


# cdms_check -------------------------------------------------------------------------------------
def test_cdms_check_passes_the_example_models_and_says_their_keys_are_guessed():
    out, _ = command("cdms_check")
    assert "core.Organisation: warning: the key 'accountid' is guessed" in out
    # the example app's two models and the test app's four
    assert out.splitlines()[-1] == "6 synced models checked against $metadata: no mapping is wrong"


def test_cdms_check_reports_what_is_wrong_and_exits_non_zero(cdms_simulator):
    wrong = (
        metadata_text(cdms_simulator)
        .replace('<Property Name="telephone1" Type="Edm.String" MaxLength="50" />', "")
        .replace(
            'Name="numberofemployees" Type="Edm.Int32"',
            'Name="numberofemployees" Type="Edm.String"',
        )
        .replace(
            'Name="name" Type="Edm.String" MaxLength="160"',
            'Name="name" Type="Edm.String" MaxLength="300"',
        )
        .replace('<EntitySet Name="contacts"', '<EntitySet Name="people"')
    )
    cdms_simulator.add_faults(
        {
            "path": r"/\$metadata$",
            "status": 200,
            "body": wrong,
            "headers": {"Content-Type": "application/xml"},
        }
    )
    out = StringIO()
    with pytest.raises(CommandError, match="2 synced models checked against \\$metadata: 3 wrong"):
        call_command("cdms_check", "core.Organisation", "core.Contact", stdout=out)
    assert out.getvalue().splitlines() == [
        "core.Organisation: warning: the key 'accountid' is guessed from the entity set's name, "
        "not read from $metadata (which agrees): declare it as CDMS.key",
        "core.Organisation: warning: name: 'name' holds up to 300 characters; the field, 160",
        "core.Organisation: error: phone: 'telephone1' is not a property of account",
        "core.Organisation: error: employees: 'numberofemployees' is Edm.String, which does not "
        "convert to a IntegerField",
        "core.Contact: error: the entity set 'contacts' is not in $metadata",
    ]


# cdms_inspect -----------------------------------------------------------------------------------
def test_cdms_inspect_writes_models_that_map_the_entity_sets(cdms_simulator):
    out, _ = command("cdms_inspect", "accounts", "contacts")
    namespace: dict = {"__name__": "core.inspected"}  # a module of the core app
    with isolate_apps("core"):
        exec(compile(out, "inspected", "exec"), namespace)
        account, contact = namespace["Account"], namespace["Contact"]
        system = {"accountid", "_parentaccountid_value", "createdon", "modifiedon"}
        system.add("overriddencreatedon")  # a migration column, not one a model maps
        assert {f.name for f in account._meta.local_fields} - {
            "id",
            "cdms_pk",
            "cdms_modified",
            "cdms_etag",
            "created",
            "modified",
        } == ACCOUNT_PROPERTIES - system - {"versionnumber"} | {"parentaccountid"}
        assert account._meta.get_field("name").max_length == 160
        assert account._meta.get_field("revenue").decimal_places == 4
        assert account._meta.get_field("parentaccountid").related_model is account
        assert contact._meta.get_field("parentcustomerid_account").related_model is account
        assert account.cdms.errors == contact.cdms.errors == []
        assert contact.cdms.get("parentcustomerid_account").remote == "_parentcustomerid_value"
        assert check_models([account, contact], remote.client().metadata()) == []


def test_cdms_inspect_refuses_an_unknown_entity_set():
    with pytest.raises(CommandError, match="not in \\$metadata: leads"):
        command("cdms_inspect", "accounts", "leads")


# the admin --------------------------------------------------------------------------------------
def test_sync_state_is_in_the_admin(admin_client):
    command("cdms_resync", "core.Contact")
    changelist = admin_client.get("/admin/migrator/syncstate/")
    assert changelist.status_code == 200
    assert b"core.Contact" in changelist.content
    state = SyncState.objects.get(model="core.Contact")
    change = admin_client.get(f"/admin/migrator/syncstate/{state.pk}/change/")
    assert change.status_code == 200 and b"deltatoken" in change.content
    assert admin_client.get("/admin/migrator/syncstate/add/").status_code == 403
