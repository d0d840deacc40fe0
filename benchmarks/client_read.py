"""``CDMSClient.iter()`` against the plain ``requests`` loop, reading the same records from
the same simulator (in a process of its own) in one run: the client's overhead."""

from __future__ import annotations

from cdms_api.client import CDMSClient
from cdms_api.simulator.testing import simulator_process

from . import data, plain
from .measure import Comparison, Journal, Plan, Reader, compare

SELECT = "name,websiteurl,numberofemployees,revenue"
GROUP = 1


def run(plan: Plan) -> list[Comparison]:
    with simulator_process() as simulator:
        data.load(simulator, data.accounts(plan.records, GROUP))
        client = CDMSClient(
            simulator.base_url,
            token_url=simulator.token_url,
            client_id=simulator.client_id,
            client_secret=simulator.client_secret,
            page_size=plain.PAGE_SIZE,
        )
        session, url = simulator.session(), f"{simulator.base_url}accounts"
        readers = [
            Reader(
                "CDMSClient.iter()",
                lambda: sum(1 for _ in client.iter("accounts", select=SELECT.split(","))),
            ),
            Reader("plain loop", lambda: plain.read_all(session, url, {"$select": SELECT})),
        ]
        figure = compare(
            "client", "paged read", plan.records, readers, plan.runs, Journal(simulator)
        )
        client.close()
    return [figure]
