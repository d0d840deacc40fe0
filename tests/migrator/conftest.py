import pytest

from cdms_api.client import CDMSClient
from core.models import Contact, Organisation
from tests.migrator.crm import CRM, names
from tests.seeded import ALL, PEOPLE


@pytest.fixture(autouse=True)
def cdms_remote(cdms_simulator_settings, db):
    """Point the project at the per-test simulator, with fast retries."""
    return cdms_simulator_settings


@pytest.fixture
def crm(cdms_simulator):
    client = CDMSClient(
        cdms_simulator.base_url,
        token_url=cdms_simulator.token_url,
        client_id=cdms_simulator.client_id,
        client_secret=cdms_simulator.client_secret,
    )
    yield CRM(client)
    client.close()


@pytest.fixture
def synced():
    """The local tables as a first read left them: the seed data."""
    assert names(Organisation.objects.all()) == ALL
    assert names(Contact.objects.all()) == PEOPLE
