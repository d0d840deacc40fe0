"""The demo's second part: real requests to the simulator and its answers -- auth, a filtered
read, paging, writes with ETags, a rolled-back batch, an injected fault and the change feed."""

from __future__ import annotations

import json

import requests

from cdms_api.simulator.testing import SimulatorHandle


class WireDemo:
    """The Web API itself: plain HTTP requests and the simulator's answers."""

    def __init__(self, simulator: SimulatorHandle, write):
        self.simulator, self.write = simulator, write
        self.api = requests.Session()
        self.step = 0

    def show(self, title: str, response: requests.Response, summary: str = "") -> None:
        self.step += 1
        request = response.request
        self.write(f"\n{self.step}. {title}")
        self.write(f"   {request.method} {requests.utils.unquote(request.url)}")
        self.write(
            f"   -> {response.status_code} {response.reason}" + (f": {summary}" if summary else "")
        )

    def run(self) -> None:
        sim = self.simulator
        self.write(f"\n== The Web API underneath (Dataverse v9.2 dialect, {sim.base_url})")

        token = requests.post(
            sim.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": sim.client_id,
                "client_secret": sim.client_secret,
            },
        )
        self.show(
            "Authenticate with the OAuth2 client-credentials grant",
            token,
            f"bearer token valid {token.json()['expires_in']} s",
        )
        self.api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        base = sim.base_url

        found = self.api.get(
            base + "accounts",
            params={
                "$select": "name,numberofemployees",
                "$filter": "contains(name,'acme') and numberofemployees gt 50",
                "$orderby": "numberofemployees desc",
            },
        )
        names = [f"{r['name']} ({r['numberofemployees']})" for r in found.json()["value"]]
        self.show(
            "Filtered read (case-insensitive contains, comparison, ordering)",
            found,
            ", ".join(names),
        )

        rejected = self.api.get(base + "accounts", params={"$filter": "year(createdon) eq 2020"})
        self.show(
            "A filter Dataverse refuses is refused here too",
            rejected,
            rejected.json()["error"]["message"],
        )

        pages, url = 0, base + "accounts?$select=name"
        while url:
            page = self.api.get(url, headers={"Prefer": "odata.maxpagesize=4"})
            pages, url = pages + 1, page.json().get("@odata.nextLink")
        self.show(
            "Paging with Prefer: odata.maxpagesize=4, following @odata.nextLink",
            page,
            f"{pages} pages",
        )

        tracked = self.api.get(
            base + "accounts?$select=name", headers={"Prefer": "odata.track-changes"}
        )
        delta_link = tracked.json()["@odata.deltaLink"]

        created = self.api.post(
            base + "accounts", json={"name": "Demo Ltd", "numberofemployees": 3}
        )
        self.show("Create", created, created.headers["OData-EntityId"])
        record_url = created.headers["OData-EntityId"]
        record = self.api.get(record_url, params={"$select": "name"}).json()
        updated = self.api.patch(
            record_url, json={"numberofemployees": 4}, headers={"If-Match": record["@odata.etag"]}
        )
        self.show(f"Update with the current ETag {record['@odata.etag']}", updated)
        stale = self.api.patch(
            record_url, json={"numberofemployees": 5}, headers={"If-Match": record["@odata.etag"]}
        )
        self.show("Update with the same, now stale, ETag", stale, self.error(stale))

        sim.add_faults(
            {"method": "POST", "path": "/accounts$", "status": 503, "headers": {"Retry-After": "2"}}
        )
        faulted = self.api.post(base + "accounts", json={"name": "Never Ltd"})
        self.show(
            "Injected fault: the next POST answers 503",
            faulted,
            f"Retry-After {faulted.headers['Retry-After']}, {self.error(faulted)}",
        )

        batch = self.api.post(
            base + "$batch",
            data=BATCH.replace("\n", "\r\n").encode(),
            headers={"Content-Type": "multipart/mixed; boundary=batch_demo"},
        )
        kept = self.api.get(base + "accounts", params={"$filter": "name eq 'Batch One'"})
        self.show(
            "A $batch changeset whose second create fails is rolled back whole",
            batch,
            f"'Batch One' exists afterwards: {bool(kept.json()['value'])}",
        )

        contoso = self.api.get(
            base + "accounts",
            params={
                "$select": "name",
                "$filter": "name eq 'Contoso Consulting'",
            },
        ).json()["value"][0]
        self.api.patch(f"{base}accounts({contoso['accountid']})", json={"numberofemployees": 46})
        self.api.delete(record_url)
        changes = self.api.get(delta_link)
        summary = [
            f"deleted {c['id'][:8]}" if "reason" in c else f"changed {c['name']}"
            for c in changes.json()["value"]
        ]
        self.show(
            "Change tracking: follow the delta link taken before the writes",
            changes,
            ", ".join(summary),
        )

        journal = sim.journal()
        self.write(f"\nThe simulator's journal recorded {len(journal)} requests.")

    @staticmethod
    def error(response: requests.Response) -> str:
        error = response.json()["error"]
        return f"{error['code']} {error['message']}"


BATCH = """--batch_demo
Content-Type: multipart/mixed; boundary=changeset_demo

--changeset_demo
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

POST /api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json

{}
--changeset_demo
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 2

POST /api/data/v9.2/accounts HTTP/1.1
Content-Type: application/json

{}
--changeset_demo--
--batch_demo--
""".format(
    json.dumps({"name": "Batch One"}),
    json.dumps({"name": "Batch Two", "numberofemployees": "many"}),
)
