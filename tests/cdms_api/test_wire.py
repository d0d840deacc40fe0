"""Wire-level cases the simulator cannot produce: broken bodies, odd headers."""

import email.utils
import io
import time

import pytest
import requests
import responses

from cdms_api import errors
from cdms_api.client import CDMSClient, _exactly_once
from cdms_api.retry import RetryPolicy
from cdms_api.session import CHUNK_BYTES, MAX_BODY_BYTES, parse_retry_after

BASE = "https://crm.example.com/api/data/v9.2/"
TOKEN = "https://login.example.com/tenant/oauth2/v2.0/token"
KEY = "2faef9cc-507e-519d-a449-682b0526b00d"
NOT_FOUND = {"error": {"code": "0x80040217", "message": "account does not exist"}}


def make_client(**options) -> CDMSClient:
    slept = []
    client = CDMSClient(
        BASE,
        token_url=TOKEN,
        client_id="id",
        client_secret="s3cret",
        retry=RetryPolicy(attempts=3, backoff_s=0.01, budget_s=60),
        **options,
    )
    client.session._sleep = slept.append
    client.slept = slept
    return client


@pytest.fixture
def client():
    return make_client()


def token(rsps, body=None, status=200):
    rsps.add(
        responses.POST,
        TOKEN,
        status=status,
        json=body or {"token_type": "Bearer", "expires_in": 3599, "access_token": "tok"},
    )


@responses.activate
def test_truncated_json_is_a_malformed_response(client):
    token(responses)
    responses.add(
        responses.GET,
        f"{BASE}accounts({KEY})",
        body='{"name": "Acme',
        status=200,
        content_type="application/json",
    )
    with pytest.raises(errors.MalformedResponse) as caught:
        client.get("accounts", KEY)
    assert caught.value.status == 200


@responses.activate
def test_a_page_without_a_value_list_is_malformed(client):
    token(responses)
    responses.add(responses.GET, f"{BASE}accounts", json={"value": {"not": "a list"}})
    with pytest.raises(errors.MalformedResponse, match="value"):
        list(client.iter("accounts"))


@responses.activate
def test_a_change_tracking_page_without_a_next_or_delta_link_is_malformed(client):
    token(responses)
    responses.add(responses.GET, f"{BASE}accounts", json={"value": []})
    with pytest.raises(errors.MalformedResponse, match="deltaLink"):
        list(client.change_pages("accounts"))


@responses.activate
@pytest.mark.parametrize(
    ("link", "sent"),
    [
        (
            "accounts?$select=accountid,createdon&$deltatoken=9!1",
            "$select=accountid,name&$deltatoken=9!1",
        ),
        ("accounts?$deltatoken=9", "$select=accountid,name&$deltatoken=9"),
        # a page of a read goes on as it began
        (
            "accounts?$select=accountid&$deltatoken=9&$skiptoken=x",
            "$select=accountid&$deltatoken=9&$skiptoken=x",
        ),
    ],
)
def test_a_delta_link_is_followed_with_the_properties_asked_for_now(client, link, sent):
    token(responses)
    responses.add(responses.GET, f"{BASE}accounts", json={"value": [], "@odata.deltaLink": "x"})
    list(client.change_pages("accounts", select=["accountid", "name"], link=BASE + link))
    assert responses.calls[-1].request.url == f"{BASE}accounts?{sent}"


@responses.activate
def test_deleted_entries_are_told_apart_by_reason_or_context(client):
    token(responses)
    other = "0f8fad5b-d9cb-469f-a165-70867728950e"
    responses.add(
        responses.GET,
        f"{BASE}accounts",
        json={
            "@odata.deltaLink": f"{BASE}accounts?$deltatoken=2",
            "value": [
                {"accountid": KEY, "@odata.etag": 'W/"2"', "name": "Kept"},
                {"id": other, "reason": "deleted"},
                {"@odata.context": f"{BASE}$metadata#accounts/$deletedEntity", "id": KEY},
            ],
        },
    )
    (page,) = client.change_pages("accounts", link=f"{BASE}accounts?$deltatoken=1")
    assert [r["name"] for r in page.records] == ["Kept"]
    assert page.deleted == [other, KEY]
    assert page.delta_link.endswith("$deltatoken=2")


@responses.activate
def test_an_html_error_page_still_gives_a_typed_error(client):
    token(responses)
    responses.add(
        responses.GET,
        f"{BASE}accounts({KEY})",
        status=500,
        body="<html>Internal error</html>",
        content_type="text/html",
    )
    with pytest.raises(errors.ServerError) as caught:
        client.get("accounts", KEY)
    assert caught.value.status == 500 and caught.value.code is None
    assert "HTTP 500" in caught.value.message


@responses.activate
def test_retry_after_as_an_http_date_is_honoured(client):
    token(responses)
    later = email.utils.formatdate(time.time() + 3, usegmt=True)
    responses.add(
        responses.GET,
        f"{BASE}accounts({KEY})",
        status=429,
        headers={"Retry-After": later},
        json={"error": {"code": "0x80072322", "message": "slow down"}},
    )
    responses.add(responses.GET, f"{BASE}accounts({KEY})", json={"accountid": KEY})
    assert client.get("accounts", KEY) == {"accountid": KEY}
    assert 1.5 < client.slept[0] <= 3.0


@responses.activate
def test_a_write_retried_after_an_answer_that_may_follow_its_being_applied_stays_ambiguous(
    client,
):
    """A 503 may come after the CRM applied the write: when the retry then fails with an
    answer of its own (here a 429 past the attempts), the outcome is still unknown."""
    token(responses)
    responses.add(responses.POST, f"{BASE}accounts", status=503)
    for _ in range(2):
        responses.add(responses.POST, f"{BASE}accounts", status=429)
    with pytest.raises(errors.Throttled) as raised:
        client.session.request("POST", "accounts", json={"name": "x"}, idempotent=False)
    assert raised.value.ambiguous


def test_a_write_whose_outcome_cannot_be_read_back_stays_ambiguous():
    """The write's answer is lost and the read that would find out its outcome fails: whether
    it was applied is unknown, and the error raised says so."""

    def send():
        error = errors.ServerError("answer lost", status=504)
        error.ambiguous = True
        raise error

    def settled():
        raise errors.Throttled("slow down", status=429)

    with pytest.raises(errors.Throttled) as raised:
        _exactly_once(send, settled)
    assert raised.value.ambiguous


@pytest.fixture
def keyed():
    return make_client(keys={"accounts": "accountid"})  # no table definitions to read first


def api_requests() -> list[str]:
    return [c.request.method for c in responses.calls if c.request.url.startswith(BASE)]


@responses.activate
def test_a_create_that_timed_out_is_not_sent_again_when_its_record_is_not_found(keyed):
    """The remote may still be serving the POST it did not answer in time: the read finds no
    record yet, and a second POST would be acknowledged while the first may land after it
    (after a delete of the record, bringing it back). The timeout is raised, ambiguous."""
    token(responses)
    responses.add(responses.POST, f"{BASE}accounts", body=requests.ReadTimeout("no answer"))
    responses.add(responses.GET, f"{BASE}accounts({KEY})", status=404, json=NOT_FOUND)
    with pytest.raises(errors.RemoteTimeout) as raised:
        keyed.create("accounts", {"name": "Late"}, key=KEY)
    assert raised.value.ambiguous and raised.value.in_flight
    assert api_requests() == ["POST", "GET"]


@responses.activate
def test_a_delete_that_timed_out_is_not_sent_again_when_its_record_is_still_there(keyed):
    token(responses)
    responses.add(responses.DELETE, f"{BASE}accounts({KEY})", body=requests.ReadTimeout("late"))
    responses.add(responses.GET, f"{BASE}accounts({KEY})", json={"accountid": KEY})
    with pytest.raises(errors.RemoteTimeout) as raised:
        keyed.delete("accounts", KEY)
    assert raised.value.ambiguous
    assert api_requests() == ["DELETE", "GET"]


@responses.activate
def test_a_create_whose_answer_was_dropped_is_sent_again_when_its_record_is_not_found(keyed):
    """A dropped connection ended the exchange: the remote is done with that attempt."""
    token(responses)
    responses.add(responses.POST, f"{BASE}accounts", body=requests.ConnectionError("reset"))
    responses.add(responses.GET, f"{BASE}accounts({KEY})", status=404, json=NOT_FOUND)
    responses.add(responses.POST, f"{BASE}accounts", status=201, json={"accountid": KEY})
    assert keyed.create("accounts", {"name": "Again"}, key=KEY) == {"accountid": KEY}
    assert api_requests() == ["POST", "GET", "POST"]


def test_a_write_timed_out_whose_outcome_cannot_be_read_back_may_still_land():
    def timed_out():
        error = errors.RemoteTimeout("read timeout")
        error.ambiguous = error.in_flight = True
        raise error

    def settled():
        raise errors.Throttled("slow down", status=429)

    with pytest.raises(errors.Throttled) as raised:
        _exactly_once(timed_out, settled)
    assert raised.value.ambiguous and raised.value.in_flight


@responses.activate
def test_429_without_retry_after_backs_off_within_the_cap(client):
    token(responses)
    for _ in range(2):
        responses.add(responses.GET, f"{BASE}accounts({KEY})", status=429)
    responses.add(responses.GET, f"{BASE}accounts({KEY})", json={"accountid": KEY})
    client.get("accounts", KEY)
    assert len(client.slept) == 2
    assert 0 <= client.slept[0] <= 0.01 and 0 <= client.slept[1] <= 0.02


@responses.activate
def test_an_unusable_token_answer_is_malformed(client):
    token(responses, body={"token_type": "Bearer"})  # no access_token
    with pytest.raises(errors.MalformedResponse):
        client.get("accounts", KEY)


@responses.activate
def test_token_request_sends_client_credentials_and_the_bearer_is_used(client):
    token(responses)
    responses.add(responses.GET, f"{BASE}accounts({KEY})", json={"accountid": KEY})
    client.get("accounts", KEY)
    form = responses.calls[0].request.body
    assert "grant_type=client_credentials" in form and "client_id=id" in form
    assert responses.calls[1].request.headers["Authorization"] == "Bearer tok"
    assert responses.calls[1].request.headers["OData-Version"] == "4.0"


@responses.activate
def test_error_carries_the_request_id_header(client):
    token(responses)
    responses.add(
        responses.GET,
        f"{BASE}accounts({KEY})",
        status=400,
        headers={"x-ms-service-request-id": "abc-123"},
        json={"error": {"code": "0x80060888", "message": "bad"}},
    )
    with pytest.raises(errors.BadRequest) as caught:
        client.get("accounts", KEY)
    assert caught.value.request_id == "abc-123" and caught.value.code == "0x80060888"


@responses.activate
def test_a_next_link_to_another_host_is_refused_and_gets_no_token(client):
    token(responses)
    responses.add(
        responses.GET,
        f"{BASE}accounts",
        json={"value": [{"accountid": KEY}], "@odata.nextLink": "https://evil.example/steal?x=1"},
    )
    with pytest.raises(errors.MalformedResponse, match=r"another host: evil\.example"):
        list(client.iter("accounts"))
    assert all("evil.example" not in call.request.url for call in responses.calls)


@responses.activate
def test_the_last_page_of_a_top_asks_for_no_more_than_is_left(client):
    token(responses)
    page = [{"accountid": KEY}] * 3
    responses.add(
        responses.GET,
        f"{BASE}accounts",
        json={"value": page, "@odata.nextLink": f"{BASE}accounts?$skiptoken=2"},
    )
    responses.add(
        responses.GET,
        f"{BASE}accounts",
        json={"value": page, "@odata.nextLink": f"{BASE}accounts?$skiptoken=3"},
    )
    responses.add(responses.GET, f"{BASE}accounts", json={"value": page[:1]})
    assert len(list(client.iter("accounts", top=7, page_size=3))) == 7
    prefer = [call.request.headers.get("Prefer") for call in responses.calls[1:]]
    names = 'odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"'
    assert prefer == [f"odata.maxpagesize={n},{names}" for n in (3, 3, 1)]


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None and parse_retry_after("inf") is None


def test_backoff_is_capped_and_jittered():
    policy = RetryPolicy(backoff_s=1, max_backoff_s=4)
    delays = [policy.delay(10) for _ in range(200)]
    assert max(delays) <= 4 and min(delays) >= 0 and len(set(delays)) > 100
    assert policy.delay(1, retry_after=2.5) == 2.5
    assert policy.delay(1, retry_after=99) == 99  # the budget, not the cap, bounds it


@responses.activate
def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(client):
    token(responses)
    responses.add(
        responses.GET,
        f"{BASE}accounts({KEY})",
        status=302,
        headers={"Location": "https://evil.example/steal"},
    )
    with pytest.raises(errors.MalformedResponse, match=r"redirect to evil\.example"):
        client.get("accounts", KEY)
    assert all("evil.example" not in call.request.url for call in responses.calls)


class Endless(io.RawIOBase):
    """A body of ``size`` bytes made as it is read, counting what was read."""

    def __init__(self, size: int):
        self.left, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b" " * n
        self.left -= n
        self.read_bytes += n
        return n


@responses.activate
def test_a_100_mb_answer_is_refused_after_a_bounded_read(client):
    token(responses)
    body = Endless(100 * 2**20)
    responses.add(
        responses.GET,
        f"{BASE}accounts",
        body=io.BufferedReader(body),
        content_type="application/json",
        auto_calculate_content_length=False,
    )
    with pytest.raises(errors.MalformedResponse, match="more than 67,108,864 bytes: not read"):
        list(client.iter("accounts"))
    assert body.read_bytes <= MAX_BODY_BYTES + 2 * CHUNK_BYTES
    assert len(responses.calls) == 2  # the token, the read: not retried


@responses.activate
def test_an_answer_declaring_too_long_a_body_is_not_read_at_all(client):
    token(responses)
    client.session.max_body_bytes = 1000
    responses.add(responses.GET, f"{BASE}accounts", json={"value": [{"name": "x" * 2000}]})
    with pytest.raises(errors.MalformedResponse, match="more than 1,000 bytes"):
        list(client.iter("accounts"))


@responses.activate
def test_a_token_endpoint_redirecting_gets_no_credential_sent_on(client):
    responses.add(
        responses.POST, TOKEN, status=307, headers={"Location": "https://evil.example/token"}
    )
    responses.add(responses.POST, "https://evil.example/token", json={"access_token": "x"})
    with pytest.raises(errors.TransportError, match="TooManyRedirects") as caught:
        client.get("accounts", KEY)
    assert "s3cret" not in str(caught.value)
    assert [call.request.url for call in responses.calls] == [TOKEN]


@pytest.mark.parametrize(
    ("status", "method", "ambiguous"),
    [
        (200, "PATCH", True),
        (201, "POST", True),
        (204, "DELETE", True),
        (200, "GET", False),
        (400, "POST", False),
        (None, "POST", False),
    ],
)
def test_a_malformed_answer_to_a_write_acknowledged_is_ambiguous(status, method, ambiguous):
    """The remote applied a write it answered with success, whatever the body says."""
    assert errors.MalformedResponse("x", status=status, method=method).ambiguous is ambiguous
