"""``migrator.atomic()``: the remote writes of a block's saves and deletes, across models, sent
as one changeset just before the local commit; all or nothing on both sides."""

from __future__ import annotations

import time

import pytest
from django.db import transaction
from django.db.models import F

import migrator
from cdms_api.errors import CDMSNotSupported, PreconditionFailed, ServerError, TransportError
from core.models import Contact, Organisation
from migrator.testing import assertNumRemoteCalls
from tests.secondapp.models import Sample
from tests.seeded import CONTOSO, FABRIKAM, NORTHWIND

pytestmark = pytest.mark.usefixtures("bulk_ready")
BATCH = r"/\$batch$"


def only_batches(counter) -> list[str]:
    return [c.path.rsplit("/", 1)[-1] for c in counter.calls]


@pytest.fixture
def rows(synced) -> dict[str, Organisation]:
    return {o.name: o for o in Organisation.objects.skip_cdms().all()}


def test_saves_and_deletes_across_models_are_one_changeset(crm, rows):
    northwind, fabrikam = rows[NORTHWIND], rows[FABRIKAM]
    with assertNumRemoteCalls(1) as calls, migrator.atomic():
        org = Organisation.objects.create(name="Initech", employees=3)
        contact = Contact.objects.create(last_name="Lumbergh", organisation=org)
        northwind.employees = 99
        northwind.save()
        fabrikam.delete()
    assert only_batches(calls) == ["$batch"]
    for obj in (org, northwind):
        crm.assert_in_sync(Organisation, str(obj.cdms_pk))
        assert obj.cdms_etag == crm.record(Organisation, str(obj.cdms_pk))["@odata.etag"]
    crm.assert_in_sync(Contact, str(contact.cdms_pk))
    assert crm.record(Contact, str(contact.cdms_pk))["_parentcustomerid_value"] == str(org.cdms_pk)
    assert crm.record(Organisation, str(fabrikam.cdms_pk)) is None
    assert not Organisation.objects.skip_cdms().filter(name=FABRIKAM).exists()


def test_fifty_saves_are_one_write_request(crm):
    orgs = Organisation.objects.bulk_create([Organisation(name=f"Fifty {i}") for i in range(50)])
    with assertNumRemoteCalls(1), migrator.atomic():
        for i, org in enumerate(orgs):
            org.employees = i
            org.save()
    for i, org in enumerate(orgs):
        assert crm.record(Organisation, str(org.cdms_pk))["numberofemployees"] == i
    crm.assert_all_in_sync(Organisation, [o.cdms_pk for o in orgs])


def test_the_changeset_failing_rolls_the_block_back(crm, rows):
    contoso = rows[CONTOSO]
    crm.change(CONTOSO, telephone1="+1 someone else")
    before = crm.record(Organisation, str(contoso.cdms_pk))
    org = Organisation(name="Never Made")
    # the 412 is read back: the record does not hold what was sent, the changeset fails
    with assertNumRemoteCalls(2), pytest.raises(PreconditionFailed), migrator.atomic():
        org.save()
        contoso.name = "Contoso Overwritten"
        contoso.save()
    assert crm.find("accounts", "name", "Never Made") == []
    assert crm.record(Organisation, str(contoso.cdms_pk)) == before
    assert not Organisation.objects.skip_cdms().filter(name="Never Made").exists()
    assert Organisation.objects.skip_cdms().get(pk=contoso.pk).name == CONTOSO
    assert org.pk is None and org._state.adding and org.cdms_pk is not None


def test_a_local_failure_first_sends_nothing(crm):
    org = Organisation(name="Not Sent")
    with assertNumRemoteCalls(0), pytest.raises(ZeroDivisionError), migrator.atomic():
        org.save()
        _ = 1 / 0
    assert not Organisation.objects.skip_cdms().filter(name="Not Sent").exists()
    assert org.pk is None and org._state.adding


def test_reads_in_the_block_see_what_it_wrote(crm, rows):
    """The records are not in the CRM until the block ends: a read does not take the rows
    the block created for rows deleted remotely, nor bring back a row it deleted."""
    with migrator.atomic():
        org = Organisation.objects.create(name="Pending Ltd")
        assert Organisation.objects.filter(name="Pending Ltd").count() == 1
        org.refresh_from_db()
        assert Organisation.objects.get(pk=org.pk).name == "Pending Ltd"
        rows[CONTOSO].delete()
        assert not Organisation.objects.filter(name=CONTOSO).exists()
        assert Organisation.objects.filter(name__in=[CONTOSO, NORTHWIND]).count() == 1
    crm.assert_in_sync(Organisation, str(org.cdms_pk))
    assert crm.record(Organisation, str(rows[CONTOSO].cdms_pk)) is None


def test_a_slice_in_the_block_keeps_the_rows_it_created(crm):
    """The slice's re-check of its stored rows, batched with its top read, leaves out the
    rows the block created: their records are not in the CRM yet."""
    for rank in (5, 6):
        Sample.objects.create(name=f"Rank {rank}", rank=rank, count=7)
    with migrator.atomic():
        Sample.objects.create(name="Pending", rank=1, count=7)
        query = Sample.objects.filter(count=7).order_by("rank")[:2]
        with assertNumRemoteCalls(1):
            assert [str(row) for row in query] == ["Pending", "Rank 5"]
    assert [str(row) for row in query] == ["Pending", "Rank 5"]


def test_a_savepoint_rolled_back_takes_its_writes_with_it(crm):
    kept, dropped = Organisation(name="Kept"), Organisation(name="Dropped")
    with assertNumRemoteCalls(1), migrator.atomic():
        kept.save()
        try:
            with transaction.atomic():
                dropped.save()
                raise LookupError
        except LookupError:
            pass
    assert [r["name"] for r in crm.find("accounts", "name", "Kept")] == ["Kept"]
    assert crm.find("accounts", "name", "Dropped") == []


def test_nested_blocks_send_once_with_the_outermost(crm):
    @migrator.atomic()
    def make(name: str) -> Organisation:
        return Organisation.objects.create(name=name)

    with assertNumRemoteCalls(1), migrator.atomic():
        first = make("Inner One")
        second = make("Inner Two")
    crm.assert_all_in_sync(Organisation, [first.cdms_pk, second.cdms_pk])


def test_writes_of_one_record_are_merged(crm, rows):
    northwind, contoso = rows[NORTHWIND], rows[CONTOSO]
    # the changeset, then Contoso's contact read again (the CRM cleared its lookup)
    with assertNumRemoteCalls(2), migrator.atomic():
        org = Organisation.objects.create(name="Merged")
        org.employees = 5
        org.save()
        northwind.employees = 1
        northwind.save()
        northwind.phone = "+1 2"
        northwind.save()
        contoso.employees = 2
        contoso.save()
        contoso.delete()
    record = crm.record(Organisation, str(org.cdms_pk))
    assert (record["name"], record["numberofemployees"]) == ("Merged", 5)
    record = crm.record(Organisation, str(northwind.cdms_pk))
    assert (record["numberofemployees"], record["telephone1"]) == (1, "+1 2")
    assert crm.record(Organisation, str(contoso.cdms_pk)) is None


def test_a_record_created_and_deleted_in_the_block_is_never_sent(crm):
    with assertNumRemoteCalls(0), migrator.atomic():
        Organisation.objects.create(name="Fleeting").delete()
    assert crm.find("accounts", "name", "Fleeting") == []


def test_bulk_writes_join_the_block(crm, rows):
    with assertNumRemoteCalls(3) as calls, migrator.atomic():
        made = Organisation.objects.bulk_create(
            [Organisation(name=f"Joined {i}") for i in range(3)]
        )
        Organisation.objects.filter(name__startswith="Joined").update(employees=F("pk"))
        Organisation.objects.filter(name=FABRIKAM).delete()
    # the update's read and the delete's read, then the block's one changeset
    assert only_batches(calls) == ["accounts", "accounts", "$batch"]
    for org in made:
        org.refresh_from_db()
        assert crm.record(Organisation, str(org.cdms_pk))["numberofemployees"] == org.pk
    crm.assert_all_in_sync(Organisation, [*(o.cdms_pk for o in made), rows[FABRIKAM].cdms_pk])


def test_a_block_of_more_than_a_changeset_is_refused(crm):
    objs = [Organisation(name=f"Over {i}") for i in range(1001)]
    refused = pytest.raises(CDMSNotSupported, match="at most 1000")
    with assertNumRemoteCalls(0), refused, migrator.atomic():
        Organisation.objects.bulk_create(objs)
    assert not Organisation.objects.skip_cdms().filter(name__startswith="Over").exists()


# Faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "requests"),
    [
        ({"action": "drop"}, ["$batch", "accounts", "$batch"]),  # not applied: sent again
        ({"status": 503}, ["$batch", "$batch"]),  # the remote did not act: retried
        ({"action": "apply_then_fail", "status": None}, ["$batch", "accounts"]),  # found done
        ({"action": "apply_then_fail", "status": 500}, ["$batch", "accounts"]),
    ],
    ids=["dropped", "503", "applied-then-dropped", "applied-then-500"],
)
def test_a_block_whose_answer_is_lost_is_applied_once(crm, rows, cdms_simulator, rule, requests):
    northwind = rows[NORTHWIND]
    cdms_simulator.add_faults({"method": "POST", "path": BATCH, "times": 1, **rule})
    with assertNumRemoteCalls(len(requests)) as calls, migrator.atomic():
        org = Organisation.objects.create(name="Once Only")
        northwind.employees = 1234
        northwind.save()
    assert only_batches(calls) == requests
    assert len(crm.find("accounts", "name", "Once Only")) == 1
    crm.assert_all_in_sync(Organisation, [org.cdms_pk, northwind.cdms_pk])


def test_a_block_timed_out_is_not_sent_again(crm, rows, cdms_simulator, settings):
    """The remote still serves the changeset the client stopped waiting for: read back, its
    records are not there yet, and sent again it could be applied after a later write."""
    settings.CDMS = {**settings.CDMS, "TIMEOUT": (2.0, 0.3)}
    rule = {"method": "POST", "path": BATCH, "action": "pass", "delay_ms": 600}
    cdms_simulator.add_faults(rule)
    with pytest.raises(TransportError) as raised, migrator.atomic():
        Organisation.objects.create(name="Late Block")
    assert raised.value.ambiguous
    assert not Organisation.objects.skip_cdms().filter(name="Late Block").exists()
    time.sleep(0.6)  # the changeset lands
    assert len(crm.find("accounts", "name", "Late Block")) == 1


def test_a_block_applied_then_503_and_retried_is_done_however_many_creates(
    crm, rows, cdms_simulator
):
    """Found by the fault soak: the changeset was applied and answered 503, which the session
    retries (the remote says it did not act); the retry meets the records the first attempt
    made, one create per round adopts its record, and with more creates than rounds the
    block failed with DuplicateKey (not ambiguous) though all of it was applied. Out of
    rounds, the writes are read back: all applied, the block is done."""
    northwind = rows[NORTHWIND]
    cdms_simulator.add_faults(
        {"method": "POST", "path": BATCH, "times": 1, "action": "apply_then_fail", "status": 503}
    )
    with migrator.atomic():
        orgs = [Organisation.objects.create(name=f"Applied {n}", employees=n) for n in range(4)]
        northwind.employees = 4321
        northwind.save()
    for org in orgs:
        assert [r["accountid"] for r in crm.find("accounts", "name", org.name)] == [
            str(org.cdms_pk)
        ]
    crm.assert_all_in_sync(Organisation, [*(o.cdms_pk for o in orgs), northwind.cdms_pk])


def test_a_block_refused_for_good_after_rounds_says_so_not_ambiguous(crm, rows, cdms_simulator):
    northwind = rows[NORTHWIND]
    crm.change(NORTHWIND, numberofemployees=5)
    with pytest.raises(PreconditionFailed) as caught, migrator.atomic():
        Organisation.objects.create(name="Never Made")
        northwind.employees = 6
        northwind.save()
    assert not caught.value.ambiguous
    assert crm.find("accounts", "name", "Never Made") == []


def test_a_block_failing_for_good_can_be_run_again(crm, rows, cdms_simulator):
    cdms_simulator.add_faults({"method": "POST", "path": BATCH, "times": None, "status": 500})
    org = Organisation(name="Run Again")
    with pytest.raises(ServerError), migrator.atomic():
        org.save()
    assert not Organisation.objects.skip_cdms().filter(name="Run Again").exists()
    assert crm.find("accounts", "name", "Run Again") == []
    cdms_simulator.clear_faults()
    with migrator.atomic():
        org.save()
    assert [r["accountid"] for r in crm.find("accounts", "name", "Run Again")] == [str(org.cdms_pk)]
    crm.assert_in_sync(Organisation, str(org.cdms_pk))


def created_in_a_block_that_failed(cdms_simulator) -> Organisation:
    """An organisation saved in a block whose changeset was applied, its answer lost, and the
    remote could not be read to find out: the block failed, the record exists."""
    cdms_simulator.add_faults(
        {"method": "POST", "path": BATCH, "times": 1, "action": "apply_then_fail", "status": None},
        {"method": "GET", "path": "/accounts$", "times": None, "status": 500},
    )
    org = Organisation(name="Adopted", employees=1)
    with pytest.raises(TransportError), migrator.atomic():
        org.save()
    cdms_simulator.clear_faults()
    return org


def test_a_block_run_again_after_its_create_was_applied_adopts_the_record(crm, cdms_simulator):
    """The changeset was applied, its answer lost, and the remote could not be read to find
    out: the block fails. Run again with the same instances (their keys kept), the create
    meets its own record, which is read back: changed by nobody since it was created, it is
    adopted, the changeset sent again with an update of it: one record."""
    org = created_in_a_block_that_failed(cdms_simulator)
    assert len(crm.find("accounts", "name", "Adopted")) == 1  # applied, though it failed
    assert not Organisation.objects.skip_cdms().filter(name="Adopted").exists()
    org.employees = 2
    with assertNumRemoteCalls(3) as calls, migrator.atomic():
        org.save()
    assert [call.method for call in calls.calls] == ["POST", "GET", "POST"]
    records = crm.find("accounts", "name", "Adopted")
    assert [(r["accountid"], r["numberofemployees"]) for r in records] == [(str(org.cdms_pk), 2)]
    crm.assert_in_sync(Organisation, str(org.cdms_pk))


def test_a_block_run_again_does_not_overwrite_a_change_made_since_its_create(crm, cdms_simulator):
    """As above, but another user changed the record the lost create made: run again, the
    create meets a record that no longer holds what it sent -- a conflict (412), as for an
    update, and their change stays."""
    org = created_in_a_block_that_failed(cdms_simulator)
    crm.client.update("accounts", str(org.cdms_pk), {"telephone1": "999"})
    org.employees = 2
    with pytest.raises(PreconditionFailed) as raised, migrator.atomic():
        org.save()
    assert raised.value.current["telephone1"] == "999"
    [record] = crm.find("accounts", "name", "Adopted")
    assert (record["telephone1"], record["numberofemployees"]) == ("999", 1)
    assert not Organisation.objects.skip_cdms().filter(name="Adopted").exists()


def test_plain_transaction_atomic_writes_each_save_at_once(crm):
    """Outside migrator.atomic(), a save writes the CRM at once: a failure later in the
    block rolls the local rows back and leaves the records (docs/usage.md says so); the
    same instance saved again adopts its record."""
    org = Organisation(name="Written At Once")
    with pytest.raises(LookupError), transaction.atomic():
        with assertNumRemoteCalls(1):
            org.save()
        raise LookupError
    assert not Organisation.objects.skip_cdms().filter(name="Written At Once").exists()
    assert len(crm.find("accounts", "name", "Written At Once")) == 1
    org.pk, org._state.adding = None, True
    with assertNumRemoteCalls(2):  # the create meets its own record: updated instead
        org.save()
    assert len(crm.find("accounts", "name", "Written At Once")) == 1
    crm.assert_in_sync(Organisation, str(org.cdms_pk))


def test_rows_a_delete_in_the_block_unlinks_are_read_again_after_it(crm, rows):
    """The CRM clears the contacts' lookup when the organisation goes: after the changeset,
    they are read again (one read), so that a save of one of them is no conflict."""
    smith = Contact.objects.skip_cdms().get(last_name="Smith")
    with assertNumRemoteCalls(2) as calls, migrator.atomic():
        rows[NORTHWIND].delete()
    assert only_batches(calls) == ["$batch", "contacts"]
    crm.assert_in_sync(Contact, str(smith.cdms_pk))
    smith = Contact.objects.skip_cdms().get(pk=smith.pk)
    smith.email = "smith@elsewhere.example"
    with assertNumRemoteCalls(1):
        smith.save()
