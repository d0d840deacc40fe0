"""What the resync tests share: the tests' Redis, settings for resync, a client of the test's
own for changing the remote behind the ORM's back, and the comparison of local and remote."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

from cdms_api.client import CDMSClient
from cdms_api.simulator.testing import SimulatorHandle
from tests.services import require_service

#: retries that do not slow the tests down
FAST_RETRY = {"attempts": 3, "backoff_s": 0.01, "budget_s": 5}
#: a Redis database of the tests' own, for the Celery broker, its results and resync locks
TEST_REDIS_URL = os.environ.get("CDMS_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")


def require_redis() -> None:
    parts = urlsplit(TEST_REDIS_URL)
    require_service("Redis", parts.hostname, parts.port or 6379)


def resync_settings(simulator: SimulatorHandle, **more) -> dict:
    """``settings.CDMS`` for a resync against the simulator: fast retries, locks in the
    tests' Redis under a prefix no other run shares, a short lock lifetime."""
    return simulator.client_settings(
        RETRY=FAST_RETRY,
        LOCK_URL=TEST_REDIS_URL,
        LOCK_PREFIX=f"cdms-test:{uuid.uuid4().hex}:",
        RESYNC_LOCK_TTL_S=3,
        **more,
    )


def crm_client(simulator: SimulatorHandle) -> CDMSClient:
    """A client of the test's own: its requests are not the project's."""
    return CDMSClient.from_settings(simulator.client_settings())


def remote_state(client: CDMSClient, entity_set: str) -> dict[str, str]:
    """Every remote record of the entity set: key -> ETag."""
    key = client.key_of(entity_set)
    return {
        record[key]: record["@odata.etag"]
        for page in client.key_pages(entity_set)
        for record in page.records
    }


def local_state(model) -> dict[str, str]:
    """Every synced local row of the model: remote key -> ETag it holds."""
    return {
        str(key): etag
        for key, etag in model.objects.skip_cdms()
        .filter(cdms_pk__isnull=False)
        .values_list("cdms_pk", "cdms_etag")
    }


def accounts(count: int, prefix: str = "Bulk") -> list[dict]:
    return [
        {"name": f"{prefix} {i:05d}", "numberofemployees": i, "websiteurl": f"https://{i}.example"}
        for i in range(count)
    ]


def load(simulator: SimulatorHandle, entity_set: str, records: list[dict]) -> list[str]:
    """Create records through the control API, 5,000 per call."""
    return [
        key
        for start in range(0, len(records), 5000)
        for key in simulator.load(entity_set, records[start : start + 5000])
    ]


def use_test_broker(app, queue: str) -> None:
    """Point the Celery app at the tests' Redis, its tasks on ``queue`` by default."""
    app.conf.update(
        broker_url=TEST_REDIS_URL,
        result_backend=TEST_REDIS_URL,
        task_default_queue=queue,
        broker_connection_retry_on_startup=False,
    )
