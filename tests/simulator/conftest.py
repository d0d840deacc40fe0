import pytest


@pytest.fixture
def api(cdms_simulator):
    """A plain requests session with a bearer token, against the per-test simulator."""
    session = cdms_simulator.session()
    session.base = cdms_simulator.base_url
    return session
