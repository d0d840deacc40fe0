"""The community dataverse-api client against the simulator, over HTTPS, with a requests
session holding a token from the simulator's v2.0 endpoint (the package leaves auth to its
user). It reads by filter only, and updates by upserting on the primary key."""

from __future__ import annotations

import requests
from dataverse_api import DataverseClient
from steps import (
    CA_BUNDLE,
    CLIENT_ID,
    CLIENT_SECRET,
    NAME,
    PREFIX,
    ROOT,
    SCOPE,
    TOKEN_V2,
    check,
    quoted,
    step,
)

session = requests.Session()
session.verify = CA_BUNDLE
token = session.post(
    TOKEN_V2,
    data={"grant_type": "client_credentials", "scope": SCOPE},
    auth=(CLIENT_ID, CLIENT_SECRET),
    timeout=30,
)
token.raise_for_status()
session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

client = DataverseClient(session=session, environment_url=ROOT + "/")
accounts = step("table definitions", lambda: client.entity("account"))
check(accounts.supports_create_multiple, "CreateMultiple not advertised")


def created_key() -> str:
    (response,) = accounts.create([{"name": NAME}], return_created=True)
    return response.json()["accountid"]


key = step("create", created_key)


def by_id() -> list:
    return accounts.read(filter=f"accountid eq {key}", select=["name", "telephone1"])


step("read by id", lambda: check([r["name"] for r in by_id()] == [NAME], "read back"))
step(
    "filter by name",
    lambda: check(
        [r["accountid"] for r in accounts.read(filter=f"name eq {quoted(NAME)}")] == [key],
        "filter",
    ),
)


def update():
    accounts.upsert([{"accountid": key, "telephone1": "+44 20 7946 0999"}])
    check(by_id()[0]["telephone1"] == "+44 20 7946 0999", "update")


step("update", update)


def create_multiple():
    (response,) = accounts.create([{"name": f"{PREFIX} {i}"} for i in range(5)], mode="multiple")
    check(len(response.json()["Ids"]) == 5, "CreateMultiple ids")


step("CreateMultiple", create_multiple)


def batch():
    responses = accounts.create(
        [{"name": f"{PREFIX} batch"}, {"name": f"{PREFIX} batch 2"}], mode="batch"
    )
    check(all(r.status_code == 200 for r in responses), "batch status")
    check(responses[0].text.count("HTTP/1.1 204") == 2, "batch parts")


step("$batch", batch)


def top():
    found = accounts.read(
        filter=f"startswith(name,{quoted(PREFIX)})", order_by="name desc", top=2, select=["name"]
    )
    check([r["name"] for r in found] == [f"{PREFIX} batch 2", f"{PREFIX} batch"], "top")


step("$orderby with $top", top)


def paging():
    responses = accounts.read(
        filter=f"startswith(name,{quoted(PREFIX)})", page_size=3, return_responses=True
    )
    check([len(r.json()["value"]) for r in responses] == [3, 3, 1], "pages")


step("paging with odata.maxpagesize", paging)
step("delete", lambda: accounts.delete(ids=[key]))
step("read deleted", lambda: check(by_id() == [], "still there"))
