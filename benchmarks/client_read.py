"""Reading 50,000 records through ``CDMSClient.iter()`` against a plain ``requests`` loop that
follows ``@odata.nextLink``, on the same simulator, in one run.

The simulator runs in a process of its own so that neither its CPU time nor its memory is
counted for the client. Prints both rates, their ratio (the client's overhead) and the peak
Python memory of each reader."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable

from cdms_api.client import CDMSClient
from cdms_api.simulator.testing import SimulatorHandle, simulator_process

from .simulator_read import arguments, records

SELECT = "name,websiteurl,numberofemployees,revenue"


def plain_loop(simulator: SimulatorHandle, page_size: int) -> int:
    session = simulator.session()
    url, received = f"{simulator.base_url}accounts?$select={SELECT}", 0
    while url:
        page = session.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"}).json()
        received += len(page["value"])
        url = page.get("@odata.nextLink")
    return received


def client_iter(simulator: SimulatorHandle, page_size: int) -> int:
    client = CDMSClient(
        simulator.base_url,
        token_url=simulator.token_url,
        client_id=simulator.client_id,
        client_secret=simulator.client_secret,
        page_size=page_size,
    )
    return sum(1 for _ in client.iter("accounts", select=SELECT.split(",")))


def measure(
    reader: Callable[[SimulatorHandle, int], int],
    simulator: SimulatorHandle,
    page_size: int,
    expected: int,
) -> tuple[float, int]:
    """Wall time, and the peak of traced memory, of one full read."""
    tracemalloc.start()
    started = time.perf_counter()
    received = reader(simulator, page_size)
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert received == expected, (reader.__name__, received)
    return elapsed, peak


def main(argv: list[str] | None = None) -> None:
    args = arguments(__doc__, argv)

    with simulator_process() as simulator:
        batch = records(args.records)
        for start in range(0, len(batch), 5000):
            simulator.load("accounts", batch[start : start + 5000])
        results: dict[str, list[tuple[float, int]]] = {"plain": [], "client": []}
        for _ in range(args.runs):  # alternate, so that drift hits both alike
            results["plain"].append(measure(plain_loop, simulator, args.page_size, args.records))
            results["client"].append(measure(client_iter, simulator, args.page_size, args.records))

    best = {name: min(t for t, _ in runs) for name, runs in results.items()}
    peak = {name: max(p for _, p in runs) for name, runs in results.items()}
    print(f"client read: {args.records} records, pages of {args.page_size}, best of {args.runs}")
    for name, label in (("plain", "plain requests loop"), ("client", "CDMSClient.iter()")):
        print(
            f"  {label:20s} {args.records / best[name]:>10,.0f} records/s  "
            f"peak memory {peak[name] / 1e6:6.1f} MB"
        )
    print(f"  overhead of the client: {best['client'] / best['plain'] - 1:+.1%} (goal: under 20%)")


if __name__ == "__main__":
    main()
