"""How many records per second the simulator serves for a 50,000-record paged read.

A plain ``requests`` loop follows ``@odata.nextLink`` with ``Prefer: odata.maxpagesize=5000``,
as a Dataverse client would; the figure is records received divided by wall time."""

from __future__ import annotations

import argparse
import statistics
import time

import requests

from cdms_api.simulator import Simulator, SimulatorServer
from cdms_api.simulator.testing import SimulatorHandle


def records(count: int) -> list[dict]:
    return [
        {
            "name": f"Benchmark account {i:06d}",
            "websiteurl": f"https://bench{i}.example",
            "numberofemployees": i % 5000,
            "revenue": i * 10 + 0.25,
            "new_ukbased": i % 2 == 0,
            "new_foundedon": "2001-02-03",
        }
        for i in range(count)
    ]


def paged_read(session: requests.Session, url: str, page_size: int) -> int:
    received = 0
    while url:
        page = session.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}).json()
        received += len(page["value"])
        url = page.get("@odata.nextLink")
    return received


def arguments(description: str, argv: list[str] | None) -> argparse.Namespace:
    """The options every read benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = arguments(__doc__, argv)

    with SimulatorServer(Simulator(seed="none")) as server:
        simulator = SimulatorHandle(server.root_url)
        started = time.perf_counter()
        batch = records(args.records)
        for start in range(0, len(batch), 5000):
            simulator.load("accounts", batch[start : start + 5000])
        load_s = time.perf_counter() - started
        session = simulator.session()
        url = simulator.base_url + "accounts?$select=name,websiteurl,numberofemployees,revenue"
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            received = paged_read(session, url, args.page_size)
            timings.append(time.perf_counter() - started)
            assert received == args.records, received
    best, median = min(timings), statistics.median(timings)
    print(
        f"simulator paged read: {args.records} records, pages of {args.page_size}, {args.runs} runs"
    )
    print(f"  load: {args.records / load_s:,.0f} records/s")
    print(
        f"  read: best {args.records / best:,.0f} records/s ({best:.2f} s), "
        f"median {args.records / median:,.0f} records/s ({median:.2f} s)"
    )


if __name__ == "__main__":
    main()
