import pytest


@pytest.fixture(autouse=True)
def cdms_remote(cdms_simulator_settings, db):
    """Point the project at the per-test simulator, with fast retries."""
    return cdms_simulator_settings
