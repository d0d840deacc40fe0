"""How fast the simulator serves a large paged read, in a process of its own: records per
second as the reader sees them (the plain loop, its JSON decoding included), and as the
simulator spent serving them (the time its journal records, transport and decoding excluded).
Also how fast it loads records (the admin load, as tests and benchmarks fill it)."""

from __future__ import annotations

import time

from cdms_api.simulator.testing import simulator_process

from . import data, plain
from .measure import Comparison, Journal, Plan, Reader, compare

SELECT = "name,websiteurl,numberofemployees,revenue"
GROUP = 1


def run(plan: Plan) -> list[Comparison]:
    with simulator_process() as simulator:
        started = time.perf_counter()
        data.load(simulator, data.accounts(plan.records, GROUP))
        load_s = time.perf_counter() - started
        session = simulator.session()
        url = f"{simulator.base_url}accounts"
        reader = Reader("plain loop", lambda: plain.read_all(session, url, {"$select": SELECT}))
        figure = compare(
            "simulator", "paged read", plan.records, [reader], plan.runs, Journal(simulator)
        )
    figure.notes += [
        f"reader: {plan.records / figure.subject.wall:,.0f} records/s",
        f"simulator: {plan.records / figure.subject.served:,.0f} records/s served",
        f"load: {plan.records / load_s:,.0f} records/s",
    ]
    return [figure]
