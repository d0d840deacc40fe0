"""The control API under ``/__admin/``: faults, the request journal, reset, the throttle, and
loopback-only access."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from werkzeug.test import Client

from cdms_api.simulator import Simulator


def create(api, name: str) -> str:
    response = api.post(api.base + "accounts", json={"name": name})
    assert response.status_code == 204, response.text
    return response.headers["OData-EntityId"].rsplit("(", 1)[1].rstrip(")")


def named(api, name: str) -> list[str]:
    response = api.get(
        api.base + "accounts", params={"$filter": f"name eq '{name}'", "$select": "name"}
    )
    assert response.status_code == 200
    return [row["accountid"] for row in response.json()["value"]]


def admin(cdms_simulator, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(
        method, f"{cdms_simulator.root_url}/__admin/{path}", timeout=10, **kwargs
    )


def faults(cdms_simulator) -> list[dict]:
    response = admin(cdms_simulator, "GET", "faults")
    assert response.status_code == 200
    return response.json()["faults"]


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:12]}"


# respond ----------------------------------------------------------------------------------------
def test_respond_answers_the_given_status_headers_and_body_for_times_requests(api, cdms_simulator):
    body = {"error": {"code": "0x80040216", "message": "Try later"}}
    cdms_simulator.add_faults(
        {
            "method": "GET",
            "path": r"/accounts$",
            "status": 503,
            "headers": {"Retry-After": "7", "X-Fault": "yes"},
            "body": body,
            "times": 2,
        }
    )
    for _ in range(2):
        response = api.get(api.base + "accounts", params={"$top": "1"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert response.headers["X-Fault"] == "yes"
        assert response.json() == body
    response = api.get(api.base + "accounts", params={"$top": "1"})
    assert response.status_code == 200
    assert "X-Fault" not in response.headers
    assert faults(cdms_simulator) == []


def test_respond_matches_on_method_and_on_a_path_regex(api, cdms_simulator):
    key = create(api, "Matched")
    cdms_simulator.add_faults({"method": "PATCH", "path": r"/accounts\([0-9a-f-]+\)$"})
    assert api.get(f"{api.base}accounts({key})").status_code == 200  # other method
    assert api.post(api.base + "accounts", json={"name": "x"}).status_code == 204  # other path
    response = api.patch(f"{api.base}accounts({key})", json={"name": "Not applied"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "0x80040216", "message": "An unexpected error occurred."}
    }
    # respond does not apply the request
    assert api.get(f"{api.base}accounts({key})").json()["name"] == "Matched"
    assert api.patch(f"{api.base}accounts({key})", json={"name": "Applied"}).status_code == 204


def test_a_fault_method_matches_any_case_and_star_matches_every_method(api, cdms_simulator):
    cdms_simulator.add_faults(
        {"method": "post", "path": "/accounts$", "status": 502},
        {"method": "*", "path": "/contacts$", "status": 504, "times": 2},
    )
    assert api.post(api.base + "accounts", json={"name": "x"}).status_code == 502
    assert api.get(api.base + "contacts").status_code == 504
    assert api.post(api.base + "contacts", json={"lastname": "x"}).status_code == 504
    assert api.get(api.base + "contacts").status_code == 200


def test_the_first_matching_rule_applies(api, cdms_simulator):
    cdms_simulator.add_faults(
        {"path": "/accounts$", "status": 501},
        {"path": "/accounts", "status": 502},
    )
    assert api.get(api.base + "accounts").status_code == 501
    assert api.get(api.base + "accounts").status_code == 502
    assert api.get(api.base + "accounts").status_code == 200


def test_a_text_body_is_sent_as_it_is(api, cdms_simulator):
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    cdms_simulator.add_faults(
        {"status": 502, "body": page, "headers": {"Content-Type": "text/html"}},
        {"status": 503, "body": "busy"},
    )
    response = api.get(api.base + "accounts")
    assert (response.status_code, response.text) == (502, page)
    assert response.headers["Content-Type"] == "text/html"
    response = api.get(api.base + "accounts")
    assert (response.status_code, response.text) == (503, "busy")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_a_429_fault_has_the_service_protection_body_by_default(api, cdms_simulator):
    cdms_simulator.add_faults({"status": 429, "headers": {"Retry-After": "2"}})
    response = api.get(api.base + "accounts")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.json()["error"]["code"] == "0x80072322"


def test_a_fault_with_times_null_applies_until_cleared(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/accounts$", "status": 503, "times": None})
    for _ in range(4):
        assert api.get(api.base + "accounts").status_code == 503
    [rule] = faults(cdms_simulator)
    assert (rule["status"], rule["times"], rule["action"]) == (503, None, "respond")
    response = admin(cdms_simulator, "DELETE", "faults")
    assert response.status_code == 204
    assert faults(cdms_simulator) == []
    assert api.get(api.base + "accounts").status_code == 200


def test_the_fault_listing_counts_down(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/contacts$", "status": 500, "times": 3})
    api.get(api.base + "contacts")
    [rule] = faults(cdms_simulator)
    assert rule["times"] == 2


def test_faults_apply_to_the_token_endpoint(cdms_simulator):
    cdms_simulator.add_faults({"path": "/oauth2/token$", "status": 503})
    with pytest.raises(requests.HTTPError):
        cdms_simulator.token()
    assert cdms_simulator.token()


@pytest.mark.parametrize(
    "rule",
    [
        {"pathx": "/accounts"},
        {"action": "explode"},
        {"path": "(unclosed"},
        {"action": "respond", "status": None},
        {"times": 0},
        {"times": -1},
        {"delay_ms": -5},
        {"status": 99},
        {"chance": 0},
        {"chance": 1.5},
        "not an object",
    ],
    ids=[
        "unknown-field",
        "unknown-action",
        "bad-regex",
        "respond-without-status",
        "times-zero",
        "times-negative",
        "negative-delay",
        "bad-status",
        "chance-zero",
        "chance-above-one",
        "not-an-object",
    ],
)
def test_an_invalid_fault_rule_is_400_and_adds_nothing(cdms_simulator, rule):
    response = admin(cdms_simulator, "POST", "faults", json=[{"path": "/ok"}, rule])
    assert response.status_code == 400
    assert "error" in response.json()
    assert faults(cdms_simulator) == []


def test_one_rule_may_be_posted_without_a_list(cdms_simulator):
    response = admin(cdms_simulator, "POST", "faults", json={"path": "/x", "status": 500})
    assert response.status_code == 201
    assert response.json() == {"added": 1}


# drop and apply_then_fail -----------------------------------------------------------------------
def test_drop_closes_the_connection_without_an_answer(api, cdms_simulator):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "action": "drop"})
    with pytest.raises(requests.ConnectionError):
        api.get(api.base + "accounts")
    assert api.get(api.base + "accounts").status_code == 200


def test_drop_does_not_apply_a_write(api, cdms_simulator):
    name = unique("Dropped")
    cdms_simulator.add_faults({"method": "POST", "path": "/accounts$", "action": "drop"})
    with pytest.raises(requests.ConnectionError):
        api.post(api.base + "accounts", json={"name": name})
    assert named(api, name) == []


def test_apply_then_fail_with_a_status_applies_the_write_once(api, cdms_simulator):
    name = unique("Applied")
    cdms_simulator.add_faults(
        {"method": "POST", "path": "/accounts$", "action": "apply_then_fail", "status": 503}
    )
    response = api.post(api.base + "accounts", json={"name": name})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "0x80040216"
    assert "OData-EntityId" not in response.headers
    assert len(named(api, name)) == 1


def test_apply_then_fail_without_a_status_drops_after_applying(api, cdms_simulator):
    name = unique("Applied and dropped")
    cdms_simulator.add_faults(
        {"method": "POST", "path": "/accounts$", "action": "apply_then_fail", "status": None}
    )
    with pytest.raises(requests.ConnectionError):
        api.post(api.base + "accounts", json={"name": name})
    assert len(named(api, name)) == 1


def test_apply_then_fail_on_a_patch_applies_the_update(api, cdms_simulator):
    key = create(api, "Before")
    cdms_simulator.add_faults(
        {"method": "PATCH", "path": "/accounts\\(", "action": "apply_then_fail", "status": 504}
    )
    assert api.patch(f"{api.base}accounts({key})", json={"name": "After"}).status_code == 504
    assert api.get(f"{api.base}accounts({key})").json()["name"] == "After"


# delay ------------------------------------------------------------------------------------------
def test_delay_ms_delays_the_answer(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/accounts$", "status": 503, "delay_ms": 300})
    started = time.perf_counter()
    response = api.get(api.base + "accounts")
    elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert elapsed >= 0.3
    [entry] = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")][-1:]
    assert entry["duration_ms"] >= 300

    started = time.perf_counter()
    assert api.get(api.base + "accounts").status_code == 200
    assert time.perf_counter() - started < 0.3


def test_delay_ms_with_apply_then_fail(api, cdms_simulator):
    name = unique("Slow")
    cdms_simulator.add_faults(
        {"path": "/accounts$", "action": "apply_then_fail", "status": 500, "delay_ms": 200}
    )
    started = time.perf_counter()
    assert api.post(api.base + "accounts", json={"name": name}).status_code == 500
    assert time.perf_counter() - started >= 0.2
    assert len(named(api, name)) == 1


def test_pass_serves_the_request_as_usual_after_the_delay(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/accounts$", "action": "pass", "delay_ms": 200})
    started = time.perf_counter()
    response = api.get(api.base + "accounts", params={"$select": "name"})
    assert time.perf_counter() - started >= 0.2
    assert response.status_code == 200 and len(response.json()["value"]) == 10


def test_a_request_timeout_shorter_than_the_delay_times_out(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/accounts$", "status": 500, "delay_ms": 500})
    with pytest.raises(requests.Timeout):
        api.get(api.base + "accounts", timeout=0.1)


def test_a_reset_lets_a_request_its_client_gave_up_on_finish_first(api, cdms_simulator):
    cdms_simulator.add_faults({"path": "/accounts$", "status": 500, "delay_ms": 1000})
    gave_up = time.monotonic()
    with pytest.raises(requests.Timeout):
        api.get(api.base + "accounts", timeout=0.1)
    cdms_simulator.reset()
    time.sleep(max(0.0, gave_up + 1.2 - time.monotonic()))  # past the delay, answered or not
    assert cdms_simulator.journal() == []


# journal ----------------------------------------------------------------------------------------
def test_the_journal_records_each_request(api, cdms_simulator):
    cdms_simulator.clear_journal()
    assert cdms_simulator.journal() == []
    started = time.time()
    api.get(api.base + "accounts", params={"$select": "name", "$top": "1"})
    api.post(api.base + "accounts", json={"name": "x" * 161})
    api.get(api.base + "nosuchset")
    finished = time.time()
    entries = cdms_simulator.journal()
    assert [(e["method"], e["path"], e["query"], e["status"], e["records"]) for e in entries] == [
        ("GET", "/api/data/v9.2/accounts", "%24select=name&%24top=1", 200, 1),
        ("POST", "/api/data/v9.2/accounts", "", 400, None),
        ("GET", "/api/data/v9.2/nosuchset", "", 404, None),
    ]
    for entry in entries:
        assert set(entry) == {
            *(
                "method",
                "path",
                "query",
                "status",
                "records",
                "duration_ms",
                "time",
                "client",
                "fault",
            )
        }
        assert isinstance(entry["duration_ms"], float)
        assert 0 <= entry["duration_ms"] < 10_000
        assert started - 1 <= entry["time"] <= finished + 1
        assert entry["client"] == "127.0.0.1"


def test_the_journal_counts_the_records_each_read_answered(api, cdms_simulator):
    """What a benchmark or a test needs to tell whether a read grows with the matches."""
    keys = cdms_simulator.load("accounts", [{"name": f"Journal {i}"} for i in range(7)])
    cdms_simulator.clear_journal()
    url = api.base + "accounts?$select=name&$filter=startswith(name,'Journal ')"
    while url:
        page = api.get(url, headers={"Prefer": "odata.maxpagesize=3"}).json()
        url = page.get("@odata.nextLink")
    record = api.get(api.base + f"accounts({keys[0]})?$select=name")
    api.get(api.base + f"accounts({keys[0]})", headers={"If-None-Match": record.headers["ETag"]})
    api.patch(api.base + f"accounts({keys[0]})", json={"name": "Journal 0 renamed"})
    assert [(e["method"], e["status"], e["records"]) for e in cdms_simulator.journal()] == [
        ("GET", 200, 3),
        ("GET", 200, 3),
        ("GET", 200, 1),
        ("GET", 200, 1),
        ("GET", 304, 0),
        ("PATCH", 204, None),
    ]


def test_the_journal_records_faults_and_drops(api, cdms_simulator):
    cdms_simulator.clear_journal()
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts$", "status": 503},
        {"method": "GET", "path": "/contacts$", "action": "drop"},
    )
    api.get(api.base + "accounts")
    with pytest.raises(requests.ConnectionError):
        api.get(api.base + "contacts")
    api.get(api.base + "accounts")
    assert [(e["path"], e["status"], e["fault"]) for e in cdms_simulator.journal()] == [
        ("/api/data/v9.2/accounts", 503, "503"),
        ("/api/data/v9.2/contacts", 599, "drop"),
        ("/api/data/v9.2/accounts", 200, None),
    ]


def test_a_rule_with_a_chance_takes_that_share_of_requests_the_rest_go_on(api, cdms_simulator):
    cdms_simulator.add_faults(
        {"path": "/accounts$", "status": 503, "times": None, "chance": 0.25},
        {"path": "/accounts$", "action": "pass", "delay_ms": 1, "times": None},
    )
    cdms_simulator.clear_journal()
    for _ in range(200):
        api.get(api.base + "accounts", params={"$select": "name", "$top": "1"})
    kinds = [e["fault"] for e in cdms_simulator.journal()]
    assert 20 <= kinds.count("503") <= 80
    assert kinds.count("slow 1 ms") == 200 - kinds.count("503")


def test_the_journal_leaves_out_the_control_api_and_delete_clears_it(api, cdms_simulator):
    cdms_simulator.clear_journal()
    cdms_simulator.add_faults({"path": "/nothing-matches-this$"})
    cdms_simulator.journal()
    assert cdms_simulator.journal() == []
    api.get(api.base + "accounts")
    assert len(cdms_simulator.journal()) == 1
    response = admin(cdms_simulator, "DELETE", "requests")
    assert response.status_code == 204
    assert cdms_simulator.journal() == []


def test_the_journal_records_token_requests(cdms_simulator):
    cdms_simulator.clear_journal()
    cdms_simulator.token()
    [entry] = cdms_simulator.journal()
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/oauth2/token", 200)


# reset ------------------------------------------------------------------------------------------
def snapshot(api) -> dict:
    volatile = {"@odata.etag", "versionnumber", "createdon", "modifiedon"}
    result = {}
    for entity_set in ("accounts", "contacts"):
        response = api.get(api.base + entity_set)
        assert response.status_code == 200
        result[entity_set] = sorted(
            (
                {k: v for k, v in row.items() if k not in volatile}
                for row in response.json()["value"]
            ),
            key=lambda row: str(sorted(row.items())),
        )
    return result


def test_reset_restores_the_seed_data_and_clears_the_controls(api, cdms_simulator):
    seeded = snapshot(api)
    create(api, "Extra")
    if seeded["accounts"]:
        first = seeded["accounts"][0]["accountid"]
        api.patch(f"{api.base}accounts({first})", json={"name": "Renamed"})
        second = seeded["accounts"][-1]["accountid"]
        api.delete(f"{api.base}accounts({second})")
    assert snapshot(api) != seeded
    cdms_simulator.add_faults({"path": "/never$", "times": None})
    cdms_simulator.throttle(1000)

    response = admin(cdms_simulator, "POST", "reset")
    assert response.status_code == 204
    assert snapshot(api) == seeded
    assert faults(cdms_simulator) == []
    assert len(cdms_simulator.journal()) == 2  # the two reads of the snapshot


def test_the_demo_seed_is_loaded(api, pytestconfig):
    seed = pytestconfig.getoption("--cdms-seed") or pytestconfig.getini("cdms_seed")
    if seed != "demo":
        pytest.skip("the suite runs with another seed")
    accounts = api.get(api.base + "accounts", params={"$select": "name"}).json()["value"]
    assert len(accounts) == 10
    assert "O'Brien & Sons" in {row["name"] for row in accounts}


# throttle ---------------------------------------------------------------------------------------
def test_the_throttle_answers_429_with_retry_after_then_recovers(api, cdms_simulator):
    cdms_simulator.throttle(3, window_s=0.5)
    started = time.monotonic()
    for _ in range(3):
        assert api.get(api.base + "accounts", params={"$top": "1"}).status_code == 200
    throttled = api.get(api.base + "accounts", params={"$top": "1"})
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json() == {
        "error": {
            "code": "0x80072322",
            "message": "Number of requests exceeded the limit of 3 over time window of 0.5 "
            "seconds.",
        }
    }
    # the token endpoint is not throttled
    assert cdms_simulator.token()
    time.sleep(max(0.0, started + 0.55 - time.monotonic()))
    assert api.get(api.base + "accounts", params={"$top": "1"}).status_code == 200


def test_retry_after_counts_whole_seconds_until_the_window_frees_a_slot(api, cdms_simulator):
    cdms_simulator.throttle(1, window_s=120)
    assert api.get(api.base + "accounts", params={"$top": "1"}).status_code == 200
    throttled = api.get(api.base + "accounts", params={"$top": "1"})
    assert throttled.status_code == 429
    assert 119 <= int(throttled.headers["Retry-After"]) <= 120


def test_removing_the_throttle(api, cdms_simulator):
    cdms_simulator.throttle(1)
    api.get(api.base + "accounts")
    assert api.get(api.base + "accounts").status_code == 429
    cdms_simulator.throttle(None)
    assert api.get(api.base + "accounts").status_code == 200


def test_a_throttle_of_zero_refuses_every_request(api, cdms_simulator):
    cdms_simulator.throttle(0)
    response = api.get(api.base + "accounts")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1


def test_requests_past_the_concurrency_limit_are_429(api, cdms_simulator):
    cdms_simulator.throttle(None, concurrency=1)
    cdms_simulator.add_faults({"path": "/accounts$", "action": "pass", "delay_ms": 300})
    slow = threading.Thread(target=api.get, args=(api.base + "accounts",))
    slow.start()
    time.sleep(0.1)
    refused = cdms_simulator.session().get(api.base + "accounts")
    slow.join()
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"] == {
        "code": "0x80072326",
        "message": "Number of concurrent requests exceeded the limit of 1.",
    }
    assert api.get(api.base + "accounts").status_code == 200  # one at a time is fine


def test_execution_time_past_the_limit_is_429_until_it_leaves_the_window(api, cdms_simulator):
    cdms_simulator.throttle(None, window_s=1, execution_s=0.2)
    cdms_simulator.add_faults({"path": "/accounts$", "action": "pass", "delay_ms": 250})
    assert api.get(api.base + "accounts").status_code == 200
    refused = api.get(api.base + "accounts")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "0x80072321"
    assert refused.json()["error"]["message"].startswith(
        "Combined execution time of incoming requests exceeded limit of 200 milliseconds over "
        "time window of 1 seconds."
    )
    time.sleep(1.0)
    assert api.get(api.base + "accounts").status_code == 200


def test_the_limits_are_per_user_across_connections(api, cdms_simulator):
    cdms_simulator.throttle(2, window_s=60)
    assert cdms_simulator.session().get(api.base + "accounts").status_code == 200
    assert cdms_simulator.session().get(api.base + "accounts").status_code == 200
    assert api.get(api.base + "accounts").status_code == 429  # same client, another connection


@pytest.mark.parametrize(
    "body",
    [
        None,
        {"window_s": 5},
        {"limit": -1},
        {"limit": 5, "window_s": 0},
        {"limit": "many"},
        {"concurrency": 1.5},
        {"execution_s": 0},
        {"limit": 5, "burst": 2},
    ],
    ids=[
        "no-body",
        "no-limit",
        "negative-limit",
        "empty-window",
        "not-a-number",
        "fractional-concurrency",
        "no-execution-time",
        "unknown-field",
    ],
)
def test_an_invalid_throttle_is_400(api, cdms_simulator, body):
    response = admin(cdms_simulator, "POST", "throttle", json=body)
    assert response.status_code == 400
    assert api.get(api.base + "accounts").status_code == 200


# load and misc ----------------------------------------------------------------------------------
def test_load_creates_records_in_one_transaction(api, cdms_simulator):
    before = int(api.get(api.base + "accounts/$count").text)
    keys = cdms_simulator.load("accounts", [{"name": "Loaded 1"}, {"name": "Loaded 2"}])
    assert len(keys) == 2
    assert int(api.get(api.base + "accounts/$count").text) == before + 2
    response = admin(
        cdms_simulator, "POST", "load/accounts", json=[{"name": "Fine"}, {"name": "x" * 200}]
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80044331"
    assert int(api.get(api.base + "accounts/$count").text) == before + 2
    assert admin(cdms_simulator, "POST", "load/widgets", json=[]).status_code == 404


def test_an_unknown_control_endpoint_is_404_and_a_bad_body_400(cdms_simulator):
    assert admin(cdms_simulator, "GET", "nothing").status_code == 404
    response = admin(cdms_simulator, "POST", "faults", data=b"{not json")
    assert response.status_code == 400


# loopback only ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def in_process():
    return Simulator(seed="none")


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/__admin/faults"),
        ("DELETE", "/__admin/faults"),
        ("POST", "/__admin/reset"),
        ("GET", "/__admin/requests"),
        ("POST", "/__admin/tokens"),
    ],
)
def test_the_control_api_refuses_other_clients(in_process, method, path):
    in_process.faults.clear()
    added = Client(in_process).post(
        "/__admin/faults", json={"path": "/kept$"}, environ_overrides={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert added.status_code == 201
    response = Client(in_process).open(
        path, method=method, json={}, environ_overrides={"REMOTE_ADDR": "10.0.0.1"}
    )
    assert response.status_code == 403
    assert response.json == {"error": "the control API answers loopback clients only"}
    assert [rule["path"] for rule in in_process.faults.listing()] == ["/kept$"]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.5.6.7", "::1", "::ffff:127.0.0.1"])
def test_the_control_api_answers_loopback_clients(in_process, address):
    response = Client(in_process).get("/__admin/faults", environ_overrides={"REMOTE_ADDR": address})
    assert response.status_code == 200


@pytest.mark.parametrize("address", [None, "", "::ffff:10.0.0.1", "fe80::1%eth0", "not-an-ip"])
def test_the_control_api_refuses_unknown_or_odd_client_addresses(in_process, address):
    environ = {"REMOTE_ADDR": address} if address is not None else {}
    response = Client(in_process).get("/__admin/faults", environ_overrides=environ)
    assert response.status_code == 403


def test_a_non_loopback_client_still_reaches_the_web_api(in_process):
    token = Client(in_process).post(
        "/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "cdms-demo-client",
            "client_secret": "cdms-demo-secret",
        },
        environ_overrides={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert token.status_code == 200
    response = Client(in_process).get(
        "/api/data/v9.2/accounts",
        headers={"Authorization": f"Bearer {token.json['access_token']}"},
        environ_overrides={"REMOTE_ADDR": "10.0.0.1"},
    )
    assert response.status_code == 200
