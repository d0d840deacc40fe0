import pytest

from cdms_api.client import CDMSClient
from cdms_api.retry import RetryPolicy
from cdms_api.simulator.testing import simulator_process as start_simulator_process

FAST_RETRY = RetryPolicy(attempts=4, backoff_s=0.01, max_backoff_s=2.0, budget_s=10.0)


@pytest.fixture
def make_client(cdms_simulator):
    """Build clients on the per-test simulator; each records the requests it makes."""
    clients = []

    def make(**options) -> CDMSClient:
        options.setdefault("retry", FAST_RETRY)
        client = CDMSClient(
            cdms_simulator.base_url,
            token_url=cdms_simulator.token_url,
            client_id=cdms_simulator.client_id,
            client_secret=cdms_simulator.client_secret,
            **options,
        )
        client.sent = []
        client.session.listeners.append(client.sent.append)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture(scope="module")
def simulator_process():
    """A simulator in a process of its own, so that memory measured here is the client's."""
    with start_simulator_process() as handle:
        yield handle
