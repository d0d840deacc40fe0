import pytest

from migrator import remote


@pytest.fixture(autouse=True)
def cdms_remote(cdms_simulator, settings, db):
    """Point the project at the per-test simulator, with fast retries."""
    settings.CDMS = {
        "BASE_URL": cdms_simulator.base_url,
        "AUTH": {
            "TOKEN_URL": cdms_simulator.token_url,
            "CLIENT_ID": cdms_simulator.client_id,
            "CLIENT_SECRET": cdms_simulator.client_secret,
        },
        "RETRY": {"attempts": 3, "backoff_s": 0.01, "budget_s": 5},
    }
    remote.reset()
    yield cdms_simulator
    remote.reset()
