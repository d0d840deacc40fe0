"""What the processes of one application user share in Redis: the token, and the request
budget the governor hands out. Each "process" here is a client of its own, with its own
connection pool, governor instance and token manager; only Redis and the simulator are shared."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from cdms_api.auth import AccessToken
from cdms_api.client import CDMSClient
from cdms_api.errors import Throttled
from cdms_api.governor import BACKGROUND, INTERACTIVE, Limits, background
from cdms_api.retry import RetryPolicy
from cdms_api.shared import RedisGovernor, RedisTokenCache
from tests.resync_support import TEST_REDIS_URL, require_redis

ACME = "2faef9cc-507e-519d-a449-682b0526b00d"
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture(autouse=True)
def redis_up():
    require_redis()


@pytest.fixture
def user() -> str:
    return f"test-user-{uuid.uuid4().hex}"  # a budget no other test shares


def governor(user: str, **limits) -> RedisGovernor:
    return RedisGovernor(TEST_REDIS_URL, user, Limits(**limits), margin_s=0.05)


def process(simulator, user: str, **limits) -> CDMSClient:
    """A process's client, as settings build it: ``user`` keeps its budget to the test."""
    return CDMSClient.from_settings(
        simulator.client_settings(
            RETRY={"attempts": 1},
            GOVERNOR={"URL": TEST_REDIS_URL, "MARGIN_S": 0.05, "PREFIX": f"{user}:", **limits},
            TOKEN_CACHE=TEST_REDIS_URL,
        )
    )


def api_statuses(simulator) -> list[int]:
    return [e["status"] for e in simulator.journal() if e["path"].startswith("/api/")]


def run_all(*work) -> None:
    threads = [threading.Thread(target=w) for w in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_processes_share_one_token_request_per_expiry(cdms_simulator):
    settings = cdms_simulator.client_settings(TOKEN_CACHE=TEST_REDIS_URL)
    settings["AUTH"]["SCOPE"] = f"{cdms_simulator.root_url}/{uuid.uuid4().hex}/.default"
    clients = [CDMSClient.from_settings(settings) for _ in range(4)]
    run_all(*(lambda c=c: c.get("accounts", ACME) for c in clients))
    token_requests = [e for e in cdms_simulator.journal() if e["path"] == "/oauth2/token"]
    assert len(token_requests) == 1
    assert sum(c.session.auth.fetches for c in clients) == 1

    cdms_simulator.tokens(expire_all=True)  # the remote forgets it: one renewal for everyone
    for client in clients:
        client.get("accounts", ACME)
    token_requests = [e for e in cdms_simulator.journal() if e["path"] == "/oauth2/token"]
    assert len(token_requests) == 2  # each process found its token refused once
    assert api_statuses(cdms_simulator).count(401) == len(clients)


def test_a_token_cache_keeps_a_token_until_it_expires():
    token = "token-of-the-test"
    # not hexadecimal: the random prefix in the repr cannot contain it by chance
    cache = RedisTokenCache(TEST_REDIS_URL, prefix=f"cdms-test:{uuid.uuid4().hex}:")
    cache.put("k", AccessToken(token, time.time() + 0.3))
    assert cache.get("k").token == token
    cache.discard("k", "another")  # someone else's refused token: this one stays
    assert cache.get("k").token == token
    time.sleep(0.4)
    assert cache.get("k") is None
    assert token not in repr(cache)


def test_the_concurrency_cap_holds_across_processes(cdms_simulator, user):
    cdms_simulator.throttle(None, concurrency=2)
    cdms_simulator.add_faults(
        {"path": "/accounts\\(", "action": "pass", "delay_ms": 150, "times": None}
    )
    clients = [process(cdms_simulator, user, CONCURRENCY=2) for _ in range(6)]
    run_all(*(lambda c=c: c.get("accounts", ACME) for c in clients))
    assert api_statuses(cdms_simulator) == [200] * 6


def test_without_the_governor_the_same_load_is_throttled(cdms_simulator):
    cdms_simulator.throttle(None, concurrency=2)
    cdms_simulator.add_faults(
        {"path": "/accounts\\(", "action": "pass", "delay_ms": 150, "times": None}
    )
    clients = [
        CDMSClient.from_settings(cdms_simulator.client_settings(RETRY={"attempts": 1}))
        for _ in range(6)
    ]
    failures = []

    def read(client):
        try:
            client.get("accounts", ACME)
        except Exception as error:
            failures.append(error)

    run_all(*(lambda c=c: read(c) for c in clients))
    assert 429 in api_statuses(cdms_simulator) and failures


def test_the_request_budget_holds_in_a_sliding_window(cdms_simulator, user):
    cdms_simulator.throttle(4, window_s=1)
    clients = [process(cdms_simulator, user, REQUESTS=4, WINDOW_S=1) for _ in range(3)]
    started = time.monotonic()
    run_all(*(lambda c=c: [c.get("accounts", ACME) for _ in range(3)] for c in clients))
    assert api_statuses(cdms_simulator) == [200] * 9
    assert time.monotonic() - started >= 2.0  # 9 requests at 4 a second: two windows waited


def test_execution_time_counts_against_the_budget(user):
    gov = governor(user, requests=100, window_s=1, execution_s=0.3)
    gov.admit(INTERACTIVE).release(0.35)
    started = time.monotonic()
    gov.admit(INTERACTIVE).release(0.01)
    assert time.monotonic() - started >= 0.9  # once the spent second has left the window


def test_interactive_requests_go_ahead_of_background_ones(user):
    gov = governor(user, concurrency=1)
    held = gov.admit(INTERACTIVE)
    order = []

    def wait_for_turn(priority, name):
        permit = gov.admit(priority)
        order.append(name)
        time.sleep(0.05)
        permit.release(0.05)

    resync = threading.Thread(target=wait_for_turn, args=(BACKGROUND, "resync"))
    resync.start()
    time.sleep(0.1)  # the resync waited first
    web = threading.Thread(target=wait_for_turn, args=(INTERACTIVE, "web"))
    web.start()
    time.sleep(0.1)
    held.release(0.3)
    resync.join(10), web.join(10)
    assert order == ["web", "resync"]


def test_background_marks_the_requests_sent_inside(cdms_simulator, user):
    seen = []

    class Recording(RedisGovernor):
        def admit(self, priority):
            seen.append(priority)
            return super().admit(priority)

    client = CDMSClient.from_settings(
        cdms_simulator.client_settings(),
        governor=Recording(TEST_REDIS_URL, user, Limits()),
    )
    client.get("accounts", ACME)
    with background():
        client.get("accounts", ACME)
    assert seen == [INTERACTIVE, BACKGROUND]


def test_a_429_holds_every_process_back(cdms_simulator, user):
    cdms_simulator.add_faults({"path": "/accounts", "status": 429, "headers": {"Retry-After": "1"}})
    first, second = process(cdms_simulator, user), process(cdms_simulator, user)
    with pytest.raises(Throttled):
        first.get("accounts", ACME)
    started = time.monotonic()
    second.get("accounts", ACME)
    assert time.monotonic() - started >= 0.9


def test_a_wait_past_the_limit_is_a_throttled_error(user):
    gov = RedisGovernor(TEST_REDIS_URL, user, Limits(concurrency=1), max_wait_s=0.2)
    gov.admit(INTERACTIVE)
    with pytest.raises(Throttled, match="API budget"):
        gov.admit(INTERACTIVE)
