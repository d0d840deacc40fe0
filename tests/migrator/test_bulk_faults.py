"""Faults on every bulk path: the write request (``CreateMultiple`` or ``$batch``) fails with
503, its connection drops, or the CRM applies it and then the answer is lost (dropped, or a
500), once or for ever. After the call returns or raises: nothing was created twice, no local
row is without its record, and no remote change is missing from the local side (every row
and record of the operation in step, ETags included). Run again once the remote is back,
the same call completes, still creating each record once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db.models import F

import migrator
from cdms_api.errors import CDMSError, PreconditionFailed
from core.models import Organisation
from tests.secondapp.models import Address, Company

pytestmark = pytest.mark.usefixtures("bulk_ready")

PREFIX = "Faulty"


@dataclass
class Path:
    """One bulk path: the model it writes, the requests' path faults aim at, and the call
    (made again with the same objects when the fault made it fail)."""

    model: type
    aimed_at: str
    call: Callable[[], object]


def create_orgs() -> Path:
    objs = [Organisation(name=f"{PREFIX} {i}", employees=i) for i in range(4)]
    return Path(Organisation, "CreateMultiple$", lambda: Organisation.objects.bulk_create(objs))


def create_addresses() -> Path:
    company = Company.objects.create(name=f"{PREFIX} Company")
    objs = [Address(name=f"{PREFIX} {i}", company=company) for i in range(4)]
    return Path(Address, r"\$batch$", lambda: Address.objects.bulk_create(objs))


def create_atomically() -> Path:
    objs = [Organisation(name=f"{PREFIX} {i}") for i in range(4)]
    return Path(
        Organisation, r"\$batch$", lambda: Organisation.objects.bulk_create(objs, atomic=True)
    )


def update_objects() -> Path:
    objs = Organisation.objects.bulk_create([Organisation(name=f"{PREFIX} {i}") for i in range(4)])
    for i, obj in enumerate(objs):
        obj.employees = 100 + i
    return Path(
        Organisation, r"\$batch$", lambda: Organisation.objects.bulk_update(objs, ["employees"])
    )


def update_queryset() -> Path:
    Organisation.objects.bulk_create(
        [Organisation(name=f"{PREFIX} {i}", employees=i) for i in range(4)]
    )
    query = Organisation.objects.filter(name__startswith=PREFIX)
    return Path(Organisation, r"\$batch$", lambda: query.update(employees=F("employees") + 1))


def delete_queryset() -> Path:
    Organisation.objects.bulk_create([Organisation(name=f"{PREFIX} {i}") for i in range(4)])
    query = Organisation.objects.filter(name__startswith=PREFIX)
    return Path(Organisation, r"\$batch$", lambda: query.delete())


def save_in_a_block() -> Path:
    objs = [Organisation(name=f"{PREFIX} {i}") for i in range(4)]

    def saves() -> None:
        with migrator.atomic():
            for obj in objs:
                obj.save()

    return Path(Organisation, r"\$batch$", saves)


PATHS = {
    "bulk_create": create_orgs,
    "bulk_create-batch": create_addresses,
    "bulk_create-atomic": create_atomically,
    "bulk_update": update_objects,
    "update": update_queryset,
    "delete": delete_queryset,
    "atomic": save_in_a_block,
}
FAULTS = {
    "503-once": {"status": 503, "times": 1},
    "dropped-once": {"action": "drop", "times": 1},
    "applied-then-dropped": {"action": "apply_then_fail", "status": None, "times": 1},
    "applied-then-500": {"action": "apply_then_fail", "status": 500, "times": 1},
    "500-always": {"status": 500, "times": None},
    "dropped-always": {"action": "drop", "times": None},
    "applied-then-dropped-always": {"action": "apply_then_fail", "status": None, "times": None},
}


def assert_in_step(crm, model: type) -> None:
    """No record made twice; every row and every record of the operation in step."""
    names = [r["name"] for r in crm.all(model.cdms.entity_set) if r["name"].startswith(PREFIX)]
    assert len(names) == len(set(names)), f"created twice: {sorted(names)}"
    local = {str(k) for k in model.objects.skip_cdms().values_list("cdms_pk", flat=True)}
    remote = {
        r[model.cdms.key] for r in crm.all(model.cdms.entity_set) if r["name"].startswith(PREFIX)
    }
    crm.assert_all_in_sync(model, local | remote)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("path", list(PATHS))
def test_a_fault_on_a_bulk_path_leaves_both_sides_in_step(crm, cdms_simulator, path, fault):
    operation = PATHS[path]()
    cdms_simulator.add_faults({"method": "POST", "path": operation.aimed_at, **FAULTS[fault]})
    try:
        operation.call()
        failed = False
    except CDMSError:
        assert FAULTS[fault]["times"] is None, "a fault once is overcome"
        failed = True
    cdms_simulator.clear_faults()
    assert_in_step(crm, operation.model)
    if failed:  # run again once the remote is back: completes, each record made once
        operation.call()
        assert_in_step(crm, operation.model)


@pytest.mark.parametrize("changed", [False, True], ids=["untouched", "changed-by-another"])
def test_saving_an_object_whose_bulk_create_could_not_read_its_record_back(
    crm, cdms_simulator, changed
):
    """``bulk_create`` created the record, but reading it back failed: the object has its key
    and no ETag. Saved, it meets its own record and adopts it -- unless another user changed
    the record since it was created: that change is not overwritten (412, as for an update)."""
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "times": None, "status": 500})
    [org] = Organisation.objects.bulk_create([Organisation(name=PREFIX, employees=1, phone="1")])
    cdms_simulator.clear_faults()
    assert org.cdms_etag == ""
    if changed:
        crm.client.update("accounts", str(org.cdms_pk), {"telephone1": "999"})
    org.employees = 2
    if changed:
        with pytest.raises(PreconditionFailed) as raised:
            org.save()
        assert raised.value.current["telephone1"] == "999"
    else:
        org.save()
    record = crm.client.get("accounts", str(org.cdms_pk))
    assert (record["telephone1"], record["numberofemployees"]) == (
        ("999", 1) if changed else ("1", 2)
    )
    assert len(crm.find("accounts", "name", PREFIX)) == 1
    if not changed:
        crm.assert_in_sync(Organisation, str(org.cdms_pk))
