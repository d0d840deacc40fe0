"""A record read before its row was deleted does not bring the row back when the page is
written after (``migrator.tombstones``): through a resync's page and through a read's, for
every model of the table, whoever found the record gone; a record created again under the
same key is stored; a row deleted locally only comes back with the next read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from cdms_api.simulator.seed import demo_key
from core.models import Organisation
from migrator import tombstones
from migrator.inbound import write_page
from migrator.loader import load
from migrator.resync import resync
from migrator.state import Tombstone
from tests.secondapp.models import Company
from tests.seeded import ACME, CONTOSO

ACME_KEY = demo_key(ACME)


@pytest.fixture
def read_before(remote_client) -> dict:
    """ACME's record as a page read it, before the ORM deletes it."""
    Organisation.objects.get(cdms_pk=ACME_KEY)
    return remote_client.get("accounts", ACME_KEY, select=Organisation.cdms.select)


def stored(model: type, key: str = ACME_KEY) -> bool:
    return model.objects.skip_cdms().filter(cdms_pk=key).exists()


def test_a_resync_page_read_before_a_delete_does_not_bring_the_row_back(remote_client, read_before):
    contoso = remote_client.get("accounts", demo_key(CONTOSO), select=Organisation.cdms.select)
    Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    Organisation.objects.skip_cdms().filter(cdms_pk=demo_key(CONTOSO)).delete()
    written = write_page(Organisation, [read_before, contoso])  # more records than tombstones
    assert not stored(Organisation)
    assert written.created == [demo_key(CONTOSO)] and not written.updated


def test_a_reads_page_read_before_a_delete_does_not_bring_the_row_back(read_before):
    Organisation.objects.filter(cdms_pk=ACME_KEY).delete()  # qs.delete(): the same
    load(Organisation, [read_before])
    assert not stored(Organisation)


def test_nor_the_row_of_another_model_of_the_same_table(remote_client, read_before):
    company_page = remote_client.get("accounts", ACME_KEY, select=Company.cdms.select)
    Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    Company.objects.skip_cdms().filter(cdms_pk=ACME_KEY).delete()
    load(Company, [company_page])
    assert not stored(Company)


def test_a_record_found_gone_is_not_brought_back_either(remote_client, read_before):
    """Deleted behind the ORM's back: the read that finds it gone deletes the row and
    buries it."""
    pk = Organisation.objects.get(cdms_pk=ACME_KEY).pk
    remote_client.delete("accounts", ACME_KEY)
    with pytest.raises(Organisation.DoesNotExist):
        Organisation.objects.get(pk=pk)
    write_page(Organisation, [read_before])
    assert not stored(Organisation)


def test_a_record_created_again_under_its_key_is_stored(remote_client, read_before):
    Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    again = remote_client.create("accounts", {"name": "Acme again"}, key=ACME_KEY)
    written = write_page(Organisation, [read_before, again])
    assert Organisation.objects.skip_cdms().get(cdms_pk=ACME_KEY).name == "Acme again"
    assert written.created == [ACME_KEY]


def test_a_row_deleted_locally_only_comes_back_with_the_next_read(read_before):
    Organisation.objects.get(cdms_pk=ACME_KEY).delete(skip_cdms=True)
    assert not Tombstone.objects.exists()
    assert Organisation.objects.get(cdms_pk=ACME_KEY).name == ACME


def test_a_failed_delete_leaves_no_tombstone(cdms_simulator, read_before):
    cdms_simulator.add_faults(
        {"method": "DELETE", "path": r"/accounts\(", "times": None, "status": 500}
    )
    with pytest.raises(Exception):  # noqa: B017 -- the error's kind is the fault tests' concern
        Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    assert not Tombstone.objects.exists()
    assert stored(Organisation)


def test_a_resync_purges_the_tombstones_past_the_horizon(read_before):
    Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    Tombstone.objects.update(buried=timezone.now() - tombstones.HORIZON - dt.timedelta(1))
    resync(Organisation)
    assert not Tombstone.objects.exists()


def test_a_resync_keeps_recent_tombstones(read_before):
    Organisation.objects.get(cdms_pk=ACME_KEY).delete()
    resync(Organisation)
    assert Tombstone.objects.filter(key=ACME_KEY).exists()
