"""The fault soak, 300 operations (``make soak`` runs 2,000): typed errors only, none hung, no
drift after one incremental resync, no duplicate, no lost write."""

import pytest

from core.soak.run import run

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_300_operation_fault_soak(cdms_simulator):
    result = run(cdms_simulator, operations=300)
    print(result.table())
    assert result.problems() == []
    assert sum(result.faults.values()) > 0.1 * result.requests
    assert result.retries > 0 and result.errors  # the faults were felt
    assert len(result.faults) == 7  # every kind
