"""The client against the simulator over HTTP: reads, paging, writes, errors, retries, auth."""

import datetime as dt
import logging
import time
import tracemalloc
import uuid
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdms_api import errors
from cdms_api.client import CDMSClient, Top
from cdms_api.keys import bind
from cdms_api.metadata import LookupInfo
from cdms_api.odata import FilterTooLong, Prop
from cdms_api.retry import RetryPolicy
from cdms_api.simulator.seed import demo_key
from tests.seeded import ACME_KEY, WIDGETS

ACME = ACME_KEY


def api_calls(client, method=None):
    return [r for r in client.sent if method is None or r.method == method]


# reads -----------------------------------------------------------------------------------
def test_get_returns_one_record_with_etag(client):
    record = client.get("accounts", ACME, select=["name"])
    assert record["name"] == "Acme Holdings"
    assert record["accountid"] == ACME
    assert record["@odata.etag"].startswith('W/"')


def test_get_missing_record_is_not_found_with_remote_details(client):
    missing = uuid.uuid4()
    with pytest.raises(errors.NotFound) as caught:
        client.get("accounts", missing)
    error = caught.value
    assert error.status == 404 and error.code == "0x80040217"
    assert str(missing) in error.message
    assert error.method == "GET" and error.url.endswith(f"accounts({missing})")
    assert error.request_id


def test_iter_pages_through_12000_records_in_constant_memory(simulator_process):
    for start in range(0, 12_000, 4000):
        simulator_process.load(
            "accounts",
            [
                {"name": f"bulk {i:05d}", "websiteurl": "x" * 150}
                for i in range(start, start + 4000)
            ],
        )
    client = CDMSClient(
        simulator_process.base_url,
        token_url=simulator_process.token_url,
        client_id=simulator_process.client_id,
        client_secret=simulator_process.client_secret,
        page_size=1000,
    )
    client.sent = []
    client.session.listeners.append(client.sent.append)
    query = dict(filter="startswith(name,'bulk ')", select=["name", "websiteurl"])

    tracemalloc.start()
    streamed = sum(1 for _ in client.iter("accounts", **query))
    streaming_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    kept = list(client.iter("accounts", **query))
    keeping_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    assert streamed == len(kept) == 12_000
    assert len({r["name"] for r in kept}) == 12_000
    assert len(api_calls(client, "GET")) == 2 * 12  # one request per page of 1,000
    assert streaming_peak < keeping_peak / 4


def test_iter_orders_and_tops(client):
    records = list(
        client.iter(
            "accounts",
            select=["name", "numberofemployees"],
            orderby=["numberofemployees desc", "name"],
            top=3,
        )
    )
    assert [r["name"] for r in records] == [
        "Acme Holdings",
        "東京トレーディング",
        "Northwind Traders",
    ]
    assert len(api_calls(client)) == 1


def test_top_beyond_one_page_is_paged_and_cut(client):
    records = list(client.iter("accounts", select=["name"], top=7, page_size=3))
    assert len(records) == 7
    assert len({r["accountid"] for r in records}) == 7
    assert len(api_calls(client)) == 3


def test_iter_expands_a_lookup(client):
    [widgets] = client.iter(
        "accounts",
        filter="name eq 'Acme Widgets'",
        select=["name"],
        expand=["parentaccountid($select=name)"],
    )
    assert widgets["parentaccountid"]["name"] == "Acme Holdings"


def test_count(client):
    assert client.count("accounts") == 10
    assert client.count("accounts", "new_ukbased eq true") == 5


def test_exact_count_is_one_request_of_at_most_one_key(client, cdms_simulator):
    """``$count=true`` with a page of one record, not ``$top`` (Dataverse advises against
    ``$top`` with ``$count``), and the annotation telling a count that stopped at the limit."""
    cdms_simulator.clear_journal()
    assert client.exact_count("accounts", Prop("numberofemployees").gt(10)) == 8
    [sent] = [r for r in client.sent if r.path.endswith("/accounts")]
    assert sent.params == {
        "$filter": "numberofemployees gt 10",
        "$select": "accountid",
        "$count": "true",
    }
    [answered] = [e for e in cdms_simulator.journal() if e["path"].endswith("/accounts")]
    assert answered["records"] == 1
    assert client.exact_count("accounts", Prop("name").eq("nobody")) == 0


def test_exact_count_is_none_past_the_limit(client, cdms_simulator):
    cdms_simulator.load("accounts", [{"name": f"Many {i:05d}"} for i in range(4990)])
    assert client.exact_count("accounts") == 5000  # exactly the limit: all counted
    cdms_simulator.load("accounts", [{"name": "One more"}])
    assert client.exact_count("accounts") is None
    assert client.count("accounts") == 5000
    assert client.exact_count("accounts", Prop("name").startswith("Many")) == 4990


def test_exact_count_of_a_filter_too_long_for_a_url_sends_nothing(client):
    keys = [uuid.uuid4() for _ in range(2000)]
    with pytest.raises(FilterTooLong):
        client.exact_count("accounts", Prop("accountid").isin(keys))
    assert not [r for r in client.sent if r.path.endswith("/accounts")]


@pytest.mark.parametrize(
    "body",
    [
        {"value": []},
        {"@odata.count": "3", "value": []},
        {"@odata.count": True, "value": []},
        {"@odata.count": 3, "@Microsoft.Dynamics.CRM.totalrecordcountlimitexceeded": "no"},
    ],
)
def test_exact_count_of_a_malformed_answer(client, cdms_simulator, body):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts$", "status": 200, "body": body})
    with pytest.raises(errors.MalformedResponse):
        client.exact_count("accounts")


# writes ----------------------------------------------------------------------------------
def test_create_generates_the_key_and_returns_the_stored_record(client):
    record = client.create("accounts", {"name": "Created Ltd", "numberofemployees": 4})
    uuid.UUID(record["accountid"])
    assert record["name"] == "Created Ltd" and record["modifiedon"]
    assert client.get("accounts", record["accountid"])["numberofemployees"] == 4
    assert len(api_calls(client, "POST")) == 1


def test_create_with_an_existing_key_is_a_duplicate(client):
    with pytest.raises(errors.DuplicateKey) as caught:
        client.create("accounts", {"name": "Again"}, key=ACME)
    assert caught.value.status == 412 and caught.value.code == "0x80040237"


def test_update_with_a_stale_etag_is_a_conflict(client):
    record = client.get("accounts", ACME)
    updated = client.update(
        "accounts", ACME, {"numberofemployees": 1201}, etag=record["@odata.etag"]
    )
    assert updated["numberofemployees"] == 1201
    assert updated["@odata.etag"] != record["@odata.etag"]
    with pytest.raises(errors.PreconditionFailed) as caught:
        client.update("accounts", ACME, {"numberofemployees": 1202}, etag=record["@odata.etag"])
    assert caught.value.code == "0x80060882"
    assert client.get("accounts", ACME)["numberofemployees"] == 1201


def test_update_never_creates(client):
    with pytest.raises(errors.NotFound):
        client.update("accounts", uuid.uuid4(), {"name": "Ghost"})


def test_upsert_creates_then_updates_and_create_only_refuses_existing(client):
    key = uuid.uuid4()
    assert client.upsert("accounts", key, {"name": "Upserted"})["name"] == "Upserted"
    assert client.upsert("accounts", key, {"name": "Upserted again"})["name"] == "Upserted again"
    with pytest.raises(errors.DuplicateKey):
        client.upsert("accounts", key, {"name": "No"}, create_only=True)


def test_delete_with_etag_and_missing(client):
    record = client.create("accounts", {"name": "Doomed"})
    stale = record["@odata.etag"]
    client.update("accounts", record["accountid"], {"name": "Doomed 2"})
    with pytest.raises(errors.PreconditionFailed):
        client.delete("accounts", record["accountid"], etag=stale)
    client.delete("accounts", record["accountid"])
    with pytest.raises(errors.NotFound):
        client.delete("accounts", record["accountid"])


def test_lookups_are_written_with_bind_and_read_as_value(client):
    child = client.create(
        "accounts", {"name": "Child", "parentaccountid@odata.bind": bind("accounts", ACME)}
    )
    assert child["_parentaccountid_value"] == ACME
    cleared = client.update("accounts", child["accountid"], {"parentaccountid@odata.bind": None})
    assert cleared["_parentaccountid_value"] is None


LITERALS = [
    ("name", "O'Brien & Sons 100% (a/b#c) ☃"),
    ("numberofemployees", -2147483648),
    ("revenue", Decimal("123456789012345.1234")),
    ("new_ukbased", False),
    ("new_foundedon", dt.date(1999, 12, 31)),
    ("industrycode", 7),
]


@pytest.mark.parametrize(("field", "value"), LITERALS, ids=[f for f, _ in LITERALS])
def test_every_literal_type_round_trips(client, field, value):
    from cdms_api.odata import Prop, literal

    as_json = value.isoformat() if isinstance(value, dt.date) else value
    record = client.create(
        "accounts", {"name": "Literal", field: as_json} if field != "name" else {field: value}
    )
    found = list(
        client.iter(
            "accounts",
            filter=Prop(field).eq(value) & Prop("accountid").eq(uuid.UUID(record["accountid"])),
        )
    )
    assert [r["accountid"] for r in found] == [record["accountid"]], literal(value)
    stored = found[0][field]
    assert (Decimal(str(stored)) if isinstance(value, Decimal) else stored) == as_json


def test_datetime_literal_round_trips_through_createdon(client):
    from cdms_api.odata import Prop

    record = client.create("accounts", {"name": "Timed"})
    created = dt.datetime.fromisoformat(record["createdon"].replace("Z", "+00:00"))
    found = list(
        client.iter("accounts", filter=Prop("createdon").eq(created) & Prop("name").eq("Timed"))
    )
    assert [r["accountid"] for r in found] == [record["accountid"]]


# batches -----------------------------------------------------------------------------------
def test_batch_reports_every_operation_and_changesets_are_atomic(client):
    with client.batch() as batch:
        created = batch.create("accounts", {"name": "Batched"})
        read = batch.get("accounts", ACME, select=["name"])
        with batch.changeset():
            kept_out = batch.create("accounts", {"name": "Rolled back"})
            broken = batch.update("accounts", uuid.uuid4(), {"name": "Missing"})
    assert created.ok and created.record["name"] == "Batched"
    assert read.ok and read.record["name"] == "Acme Holdings"
    assert isinstance(broken.error, errors.NotFound)
    assert isinstance(kept_out.error, errors.NotFound)  # rolled back with its changeset
    assert client.count("accounts", "name eq 'Rolled back'") == 0
    assert client.count("accounts", "name eq 'Batched'") == 1
    assert len(api_calls(client, "POST")) == 1


def test_batch_writes_decimals_dates_and_keys_as_the_web_api_expects(client):
    with client.batch() as batch:
        created = batch.create(
            "accounts",
            {"name": "Typed", "revenue": Decimal("12.5000"), "new_foundedon": dt.date(2001, 2, 3)},
        )
    assert created.ok, created.error
    record = client.get("accounts", created.key)
    assert (record["revenue"], record["new_foundedon"]) == (Decimal("12.5"), "2001-02-03")


def test_batch_reads_decimals_exactly_as_single_requests_do(client):
    """One JSON codec for the whole Web API: a decimal a float cannot hold comes back from a
    batch as the same ``Decimal`` a single request reads."""
    revenue = Decimal("123456789012345.1234")
    with client.batch() as batch:
        created = batch.create("accounts", {"name": "Exact", "revenue": revenue})
    with client.batch() as batch:
        read = batch.get("accounts", created.key, select=["revenue"])
    single = client.get("accounts", created.key, select=["revenue"])
    assert created.record["revenue"] == read.record["revenue"] == single["revenue"] == revenue
    assert isinstance(read.record["revenue"], Decimal)


def test_batch_of_2500_operations_is_three_requests(client):
    with client.batch() as batch:
        for i in range(2500):
            batch.create("contacts", {"lastname": f"Batch {i}"})
    assert all(op.ok for op in batch.operations)
    assert batch.requests == 3
    assert client.count("contacts", "startswith(lastname,'Batch ')") == 2500


def test_tops_are_read_together_in_one_batch(cdms_simulator, client):
    """Each read's first records, in its order, in one request; the journal counts the
    records its reads answered."""
    cdms_simulator.clear_journal()
    ranked, keyed = client.tops(
        "accounts",
        [
            Top("numberofemployees ne null", 2, ["name"], ["numberofemployees desc"]),
            Top(Prop("accountid").isin([ACME, demo_key(WIDGETS)]), 2, ["name"]),
        ],
    )
    employees = client.iter("accounts", "numberofemployees ne null", ["numberofemployees"])
    most = sorted(employees, key=lambda r: -r["numberofemployees"])[:2]
    assert [r["accountid"] for r in ranked] == [r["accountid"] for r in most]
    assert {r["accountid"] for r in keyed} == {ACME, demo_key(WIDGETS)}
    [batch] = [e for e in cdms_simulator.journal() if e["path"].endswith("$batch")]
    assert batch["records"] == 4


def test_a_top_too_long_for_a_batch_is_refused_before_sending(client):
    keys = [str(uuid.uuid4()) for _ in range(2000)]
    with pytest.raises(FilterTooLong):
        client.tops("accounts", [Top(Prop("accountid").isin(keys), 2000)])
    assert api_calls(client) == []


# change tracking -----------------------------------------------------------------------------
def test_changes_follow_the_delta_link(client):
    first = client.changes("accounts", select=["name"])
    assert len(first.changed) == 10 and first.deleted == []
    created = client.create("accounts", {"name": "New since"})
    client.update("accounts", ACME, {"name": "Acme Holdings plc"})
    client.delete("accounts", created["accountid"])
    other = client.create("accounts", {"name": "Also new"})
    second = client.changes("accounts", delta_link=first.delta_link)
    assert {r["name"] for r in second.changed} == {"Acme Holdings plc", "Also new"}
    assert second.deleted == [created["accountid"]]
    third = client.changes("accounts", delta_link=second.delta_link)
    assert third.changed == [] and third.deleted == []
    assert other["accountid"] not in third.deleted


def test_change_pages_stream_a_tracked_read_and_resume_from_a_next_link(make_client):
    client = make_client(page_size=4)
    pages = client.change_pages("accounts", select=["name"])
    first = next(pages)
    assert len(first.records) == 4 and first.deleted == []
    assert first.next_link and first.delta_link is None
    pages.close()  # stopped after one page, as a killed worker would
    resumed = list(client.change_pages("accounts", link=first.next_link))
    assert [len(page.records) for page in resumed] == [4, 2]
    assert resumed[-1].next_link is None and resumed[-1].delta_link
    names = {r["name"] for page in [first, *resumed] for r in page.records}
    assert len(names) == 10
    assert len(api_calls(client)) == 1 + 2  # each page read once
    # the resumed read's delta link covers changes since the read began
    created = client.create("accounts", {"name": "Later"})
    (delta,) = client.change_pages("accounts", link=resumed[-1].delta_link)
    assert [r["accountid"] for r in delta.records] == [created["accountid"]]


def test_change_pages_report_deleted_keys_apart(client):
    delta_link = client.changes("contacts", select=["lastname"]).delta_link
    gone = client.create("contacts", {"lastname": "Short-lived"})["contactid"]
    client.delete("contacts", gone)
    (page,) = client.change_pages("contacts", link=delta_link)
    assert page.records == [] and page.deleted == [gone]


def test_a_table_without_change_tracking_is_a_typed_error(cdms_simulator, client):
    cdms_simulator.change_tracking("contacts", False)
    with pytest.raises(errors.ChangeTrackingNotEnabled) as caught:
        next(client.change_pages("contacts"))
    assert isinstance(caught.value, errors.BadRequest)
    assert caught.value.code == "0x80072491" and caught.value.status == 400
    assert "isn't enabled for change tracking" in str(caught.value)


def test_an_expired_delta_link_is_a_typed_error(cdms_simulator, client):
    delta_link = client.changes("accounts", select=["name"]).delta_link
    cdms_simulator.expire_changes("accounts")
    with pytest.raises(errors.ChangesExpired) as caught:
        client.changes("accounts", delta_link=delta_link)
    assert caught.value.code == "0x80044352"
    assert "Please perform a full sync" in caught.value.message


def test_key_pages_select_the_key_alone(cdms_simulator, make_client):
    client = make_client(page_size=4)
    pages = list(client.key_pages("accounts"))
    assert [len(page.records) for page in pages] == [4, 4, 2]
    assert all(set(r) == {"@odata.etag", "accountid"} for page in pages for r in page.records)
    assert cdms_simulator.journal()[-3]["query"] == "%24select=accountid"
    resumed = list(client.key_pages("accounts", link=pages[0].next_link))
    assert [r["accountid"] for page in resumed for r in page.records] == [
        r["accountid"] for page in pages[1:] for r in page.records
    ]
    filtered = list(client.key_pages("accounts", filter="startswith(name,'Acme')"))
    assert {r["accountid"] for r in filtered[0].records} == {ACME, demo_key(WIDGETS)}


def test_modified_pages_read_from_a_watermark_oldest_first(make_client):
    client = make_client(page_size=3)
    everything = [
        r for page in client.modified_pages("contacts", select=["lastname"]) for r in page.records
    ]
    assert len(everything) == 6
    assert [r["modifiedon"] for r in everything] == sorted(r["modifiedon"] for r in everything)
    time.sleep(1.1)  # modifiedon has whole seconds
    changed = client.update("contacts", everything[0]["contactid"], {"lastname": "Renamed"})
    since = dt.datetime.fromisoformat(changed["modifiedon"])
    (page,) = client.modified_pages("contacts", since=since, select=["lastname"])
    assert [(r["contactid"], r["lastname"]) for r in page.records] == [
        (everything[0]["contactid"], "Renamed")
    ]
    assert set(page.records[0]) == {"@odata.etag", "contactid", "lastname", "modifiedon"}


def test_total_record_counts_are_not_capped(cdms_simulator, client):
    cdms_simulator.load("contacts", [{"lastname": f"Many {i}"} for i in range(5100)])
    assert client.total_record_counts("contact", "account") == {"contact": 5106, "account": 10}
    with pytest.raises(errors.NotFound):
        client.total_record_counts("contacts")


def test_metadata_lists_entity_sets_and_types(client):
    metadata = client.metadata()
    accounts = metadata["accounts"]
    assert accounts.key == "accountid"
    assert accounts.properties["numberofemployees"] == "Edm.Int32"
    assert accounts.properties["_parentaccountid_value"] == "Edm.Guid"
    assert accounts.navigations["parentaccountid"] == "account"
    assert metadata["contacts"].navigations["parentcustomerid_account"] == "account"
    assert accounts.facets["name"] == {"MaxLength": "160"}
    assert accounts.facets["revenue"] == {"Precision": "19", "Scale": "4"}
    assert accounts.lookups["parentaccountid"] == LookupInfo(
        "_parentaccountid_value", "account_parent_account"
    )
    assert metadata["contacts"].lookups["parentcustomerid_account"].value == (
        "_parentcustomerid_value"
    )


# faults and retries ---------------------------------------------------------------------------
def test_throttling_waits_for_retry_after(cdms_simulator, client):
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts", "status": 429, "headers": {"Retry-After": "1"}}
    )
    started = time.monotonic()
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    assert time.monotonic() - started >= 1.0
    served = [e for e in cdms_simulator.journal() if e["path"].endswith(f"accounts({ACME})")]
    assert [e["status"] for e in served] == [429, 200]
    assert served[1]["time"] - served[0]["time"] >= 1.0


def test_throttle_beyond_the_budget_raises_throttled(cdms_simulator, make_client):
    client = make_client(retry=RetryPolicy(attempts=3, backoff_s=0.01, budget_s=0.5))
    cdms_simulator.add_faults(
        {"path": "/accounts", "status": 429, "times": None, "headers": {"Retry-After": "5"}}
    )
    with pytest.raises(errors.Throttled) as caught:
        client.get("accounts", ACME)
    assert caught.value.retry_after == 5.0 and caught.value.code == "0x80072322"
    assert len(api_calls(client, "GET")) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_transient_server_errors_on_reads_are_retried(cdms_simulator, client, status):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "status": status, "times": 2})
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    assert [r.status for r in api_calls(client, "GET")] == [status, status, 200]


def test_500_is_not_retried(cdms_simulator, client):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "status": 500})
    with pytest.raises(errors.ServerError):
        client.get("accounts", ACME)
    assert len(api_calls(client, "GET")) == 1


def test_retries_stop_after_the_attempt_limit(cdms_simulator, client):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "status": 503, "times": None})
    with pytest.raises(errors.ServerError):
        client.get("accounts", ACME)
    assert len(api_calls(client, "GET")) == 4


def test_dropped_read_is_retried(cdms_simulator, client):
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "action": "drop"})
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    assert [r.error for r in api_calls(client, "GET")] == ["TransportError", None]


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "apply_then_fail", "status": 500},
        {"action": "apply_then_fail", "status": 504},
        {"action": "apply_then_fail", "status": None},
        {"action": "drop"},
    ],
    ids=["applied-500", "applied-504", "applied-dropped", "dropped"],
)
def test_a_create_with_an_unknown_outcome_happens_exactly_once(cdms_simulator, client, fault):
    cdms_simulator.add_faults({"method": "POST", "path": "/accounts$", **fault})
    record = client.create("accounts", {"name": "Exactly once"})
    assert record["name"] == "Exactly once"
    assert client.count("accounts", "name eq 'Exactly once'") == 1


def test_a_create_served_after_its_timeout_is_not_sent_again(cdms_simulator, make_client):
    """The remote still serves a POST the client stopped waiting for. Sent again after a read
    that found nothing yet, the create was acknowledged while the first POST was still to
    land: after a delete of the record, that brought it back."""
    client = make_client(timeout=(2.0, 0.3), keys={"accounts": "accountid"})
    cdms_simulator.add_faults(
        {"method": "POST", "path": "/accounts$", "action": "pass", "delay_ms": 600}
    )
    with pytest.raises(errors.RemoteTimeout) as raised:
        client.create("accounts", {"name": "Served late"})
    assert raised.value.ambiguous
    assert [r.method for r in api_calls(client)] == ["POST", "GET"]
    time.sleep(0.6)  # the first POST lands
    assert client.count("accounts", "name eq 'Served late'") == 1


def test_a_delete_whose_answer_is_lost_is_not_an_error(cdms_simulator, client):
    record = client.create("accounts", {"name": "Lost answer"})
    cdms_simulator.add_faults({"method": "DELETE", "action": "apply_then_fail", "status": None})
    client.delete("accounts", record["accountid"])
    assert client.count("accounts", "name eq 'Lost answer'") == 0


def test_read_timeout_is_retried_then_typed(cdms_simulator, make_client):
    client = make_client(timeout=(2.0, 0.3))
    cdms_simulator.add_faults({"method": "GET", "path": "/accounts", "delay_ms": 600})
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    cdms_simulator.add_faults(
        {"method": "GET", "path": "/accounts", "delay_ms": 600, "times": None}
    )
    with pytest.raises(errors.RemoteTimeout):
        client.get("accounts", ACME)


def test_connection_refused_is_a_transport_error():
    client = CDMSClient(
        "http://127.0.0.1:9/api/data/v9.2/", retry=RetryPolicy(attempts=2, backoff_s=0.01)
    )
    with pytest.raises(errors.TransportError) as caught:
        client.get("accounts", ACME)
    assert "refused" in str(caught.value)


# auth ---------------------------------------------------------------------------------------
def test_token_is_cached_and_renewed_before_expiry(cdms_simulator, client):
    cdms_simulator.tokens(lifetime_s=61)  # renewed 60 s before expiry: after 1 s
    client.get("accounts", ACME)
    client.get("accounts", ACME)
    assert client.session.auth.fetches == 1
    time.sleep(1.1)
    client.get("accounts", ACME)
    assert client.session.auth.fetches == 2
    assert [r.status for r in api_calls(client)] == [200, 200, 200]  # never a 401


def test_an_expired_token_is_renewed_once_on_401(cdms_simulator, client):
    client.get("accounts", ACME)
    cdms_simulator.tokens(expire_all=True)
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"
    assert [r.status for r in api_calls(client, "GET")] == [200, 401, 200]
    assert client.session.auth.fetches == 2


def test_a_second_401_is_an_auth_error(cdms_simulator, client):
    cdms_simulator.add_faults({"path": "/accounts", "status": 401, "times": 2})
    with pytest.raises(errors.AuthError):
        client.get("accounts", ACME)


def test_wrong_secret_is_an_auth_error(cdms_simulator, make_client):
    client = CDMSClient(
        cdms_simulator.base_url,
        token_url=cdms_simulator.token_url,
        client_id=cdms_simulator.client_id,
        client_secret="wrong-secret-value",
    )
    with pytest.raises(errors.AuthError) as caught:
        client.get("accounts", ACME)
    assert "invalid_client" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    assert caught.value.__context__ is None and caught.value.__cause__ is None  # no chain
    traceback = caught.value.__traceback__.tb_next  # past this test's own frame
    while traceback is not None:  # no frame of the raised error held the secret
        assert "wrong-secret-value" not in repr(traceback.tb_frame.f_locals)
        traceback = traceback.tb_next


def test_secrets_never_reach_logs_reprs_or_errors(cdms_simulator, client, caplog):
    caplog.set_level(logging.DEBUG, logger="cdms_api")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    client.get("accounts", ACME)
    cdms_simulator.add_faults({"path": "/accounts", "status": 503, "times": None})
    with pytest.raises(errors.ServerError) as caught:
        client.get("accounts", ACME)
    token = client.session.auth.authorization((5, 5)).split()[1]
    frames = []
    traceback = caught.value.__traceback__.tb_next  # past this test's own frame
    while traceback is not None:  # what an error page or a debugger shows of the failure
        frames.extend(repr(value) for value in traceback.tb_frame.f_locals.values())
        traceback = traceback.tb_next
    texts = [
        *frames,
        caplog.text,
        repr(client),
        repr(client.session),
        repr(client.session.auth),
        str(caught.value),
        repr(caught.value),
    ]
    for text in texts:
        assert cdms_simulator.client_secret not in text
        assert token not in text
        assert "Bearer" not in text
    assert "GET /api/data/v9.2/accounts(" in caplog.text  # the request log line is there


def test_plain_http_is_refused_except_on_loopback():
    with pytest.raises(ValueError, match="non-HTTPS"):
        CDMSClient("http://crm.example.com/api/data/v9.2/")
    with pytest.raises(ValueError, match="non-HTTPS"):
        CDMSClient(
            "https://crm.example.com/api/data/v9.2/",
            token_url="http://login.example.com/t",
            client_id="a",
            client_secret="b",
        )
    assert CDMSClient("https://crm.example.com/api/data/v9.2/").session.http.verify is True
    CDMSClient("http://127.0.0.1:8765/api/data/v9.2/")


def test_from_settings(cdms_simulator):
    client = CDMSClient.from_settings(
        {
            "BASE_URL": cdms_simulator.base_url,
            "AUTH": {
                "TOKEN_URL": cdms_simulator.token_url,
                "CLIENT_ID": cdms_simulator.client_id,
                "CLIENT_SECRET": cdms_simulator.client_secret,
            },
            "TIMEOUT": (3, 30),
            "RETRY": {"attempts": 2},
            "PAGE_SIZE": 100,
        }
    )
    assert client.session.timeout == (3, 30) and client.session.retry.attempts == 2
    assert client.get("accounts", ACME)["name"] == "Acme Holdings"


def test_a_filter_longer_than_a_url_is_split_and_the_results_merged(client):
    from cdms_api.odata import Prop

    seeded = [r["accountid"] for r in client.iter("accounts", select=["name"])]
    keys = [uuid.uuid4() for _ in range(3000)] + [uuid.UUID(k) for k in seeded]
    query = Prop("accountid").isin(keys) | Prop("name").eq("Acme Holdings")
    found = list(client.iter("accounts", filter=query, select=["name"]))
    assert sorted(r["accountid"] for r in found) == sorted(seeded)
    with pytest.raises(FilterTooLong, match="orderby"):
        list(client.iter("accounts", filter=query, orderby=["name"], top=3))
    requests_made = api_calls(client, "GET")[1:]
    assert len(requests_made) > 1
    assert all(len(r.url) <= 32_000 for r in requests_made)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60)
)
def test_any_text_written_with_create_is_found_by_eq_and_read_back_identical(client, value):
    from cdms_api.odata import Prop

    name = f"{uuid.uuid4().hex}{value}"  # unique: Dataverse compares text case-insensitively
    created = client.create("accounts", {"name": name})
    found = list(client.iter("accounts", filter=Prop("name").eq(name), select=["name"]))
    assert [r["accountid"] for r in found] == [created["accountid"]]
    assert found[0]["name"] == name
    assert client.get("accounts", created["accountid"], select=["name"])["name"] == name
