"""A Celery worker process killed with SIGKILL halfway through a full resync: the next worker
goes on from the last page written, reads no page twice but the one in flight, and ends with
the local table equal to the remote."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from urllib.parse import unquote

import pytest
import redis

from core.models import Organisation
from core.workers import worker_process
from migrator import remote
from migrator.state import SyncState
from migrator.tasks import resync_model
from tests.resync_support import (
    TEST_REDIS_URL,
    accounts,
    crm_client,
    load,
    local_state,
    remote_state,
    require_redis,
    resync_settings,
)

pytestmark = pytest.mark.django_db(transaction=True)
RECORDS, PAGE_SIZE = 6000, 500  # with the 10 of the seed: 13 pages


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_killed_halfway_through_a_full_resync(cdms_simulator, settings, tmp_path):
    require_redis()
    queue = f"cdms-test-{uuid.uuid4().hex}"
    settings.CDMS = resync_settings(cdms_simulator, PAGE_SIZE=PAGE_SIZE)
    remote.reset()
    load(cdms_simulator, "accounts", accounts(RECORDS))
    cdms_simulator.add_faults(  # a slow remote, so that the kill lands halfway
        {"method": "GET", "path": "/accounts$", "times": None, "action": "pass", "delay_ms": 150}
    )
    cdms_simulator.clear_journal()
    state = SyncState.objects.filter(model="core.Organisation")
    log = (tmp_path / "workers.log").open("w")

    with worker_process(queue, log, TEST_REDIS_URL, settings.CDMS) as first:
        resync_model.apply_async(("core.Organisation",), {"full": True}, queue=queue)
        wait_for(lambda: state.filter(records_done__gte=RECORDS // 2).exists(), what="half")
        first.kill()  # SIGKILL: no cleanup of any kind
        first.wait(timeout=30)
    stopped = state.get()
    assert stopped.phase == "full" and RECORDS // 2 <= stopped.records_done < RECORDS
    lock = redis.Redis.from_url(TEST_REDIS_URL)
    wait_for(
        lambda: not lock.exists(settings.CDMS["LOCK_PREFIX"] + "core.Organisation"),
        what="the dead worker's lock to expire",
    )

    with worker_process(queue, log, TEST_REDIS_URL, settings.CDMS):
        again = resync_model.apply_async(("core.Organisation",), queue=queue)  # as beat would
        outcome = again.get(timeout=120)

    assert outcome["kinds"] == ["full"]
    assert (outcome["created"], outcome["updated"], outcome["deleted"]) == (RECORDS + 10, 0, 0)
    reads = Counter(
        e["query"]
        for e in cdms_simulator.journal()
        if e["method"] == "GET"
        and e["path"].endswith("/accounts")
        # the resync's pages: other readers of the session's simulator filter or order
        and not any(option in unquote(e["query"]) for option in ("$filter", "$orderby"))
    )
    read_twice = [query for query, times in reads.items() if times > 1]
    assert len(read_twice) <= 1 and all(reads[q] == 2 for q in read_twice)
    assert len(reads) == 13  # every page read, the first and the last among them
    assert state.get().phase == ""
    remote_client = crm_client(cdms_simulator)
    assert local_state(Organisation) == remote_state(remote_client, "accounts")
    remote_client.close()
