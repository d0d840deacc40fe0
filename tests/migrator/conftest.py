import uuid

import celery.contrib.testing.tasks  # noqa: F401  (the ping task a test worker is checked with)
import pytest
from celery.contrib.testing.worker import start_worker

from core import celery_app
from core.models import Contact, Organisation
from migrator import remote
from tests.migrator.crm import CRM, names
from tests.resync_support import crm_client, require_redis, use_test_broker
from tests.seeded import ALL, PEOPLE


@pytest.fixture(autouse=True)
def cdms_remote(cdms_simulator_settings, db):
    """Point the project at the per-test simulator, with fast retries."""
    return cdms_simulator_settings


@pytest.fixture(scope="session", autouse=True)
def celery_on_the_tests_redis():
    """The Celery app on the tests' Redis, its tasks on a queue of this test run's own, set
    before anything uses the app (it keeps what it first connected with)."""
    use_test_broker(celery_app, queue=f"cdms-test-{uuid.uuid4().hex}")


@pytest.fixture(scope="session")
def worker():
    """A Celery worker in this process (two threads) on the tests' queue. Its tasks see the
    test's settings; tests using it need committed data (``django_db(transaction=True)``)."""
    require_redis()
    with start_worker(celery_app, pool="threads", concurrency=2, loglevel="WARNING") as worker:
        yield worker


@pytest.fixture
def remote_client(cdms_simulator):
    """A client of the test's own, to change the remote behind the ORM's back (its requests
    are not the project's)."""
    client = crm_client(cdms_simulator)
    yield client
    client.close()


@pytest.fixture
def crm(remote_client):
    """The remote as another user changes it, by names (``tests.migrator.crm``)."""
    return CRM(remote_client)


@pytest.fixture
def synced():
    """The local tables as a first read left them: the seed data."""
    assert names(Organisation.objects.all()) == ALL
    assert names(Contact.objects.all()) == PEOPLE


@pytest.fixture
def bulk_ready():
    """The project's client knows the tables' definitions and which bulk messages they take
    (read once per client): the requests a test counts from here on are its operations'."""
    client = remote.client()
    for entity_set in ("accounts", "contacts", "customeraddresses", "new_samples"):
        client.bulk_messages(entity_set)
