"""The records the benchmarks read: accounts in groups of a known size, a group told apart by
its ``numberofemployees``, so that a read of one group is an exact filter (no text, whose case
folding would make the remote filter a superset of the local one)."""

from __future__ import annotations

import datetime as dt

from cdms_api.simulator.testing import SimulatorHandle

LOAD_CHUNK = 5000  # records per load request to the simulator
FIRST_DAY = dt.date(1990, 1, 1)


def accounts(count: int, group: int, start: int = 0) -> list[dict]:
    """``count`` accounts of the group ``group`` (their ``numberofemployees``), numbered from
    ``start``; every other property set, revenue and founding date distinct."""
    return [
        {
            "name": f"Benchmark account {group}-{i:06d}",
            "websiteurl": f"https://bench{group}-{i}.example",
            "telephone1": f"+44 20 7946 {i % 10000:04d}",
            "numberofemployees": group,
            "revenue": i * 10 + 0.25,
            "new_ukbased": i % 2 == 0,
            "new_foundedon": (FIRST_DAY + dt.timedelta(days=i % 10_000)).isoformat(),
        }
        for i in range(start, start + count)
    ]


def load(simulator: SimulatorHandle, records: list[dict]) -> list[str]:
    """Create the records in the simulator; returns their keys."""
    keys: list[str] = []
    for start in range(0, len(records), LOAD_CHUNK):
        keys += simulator.load("accounts", records[start : start + LOAD_CHUNK])
    return keys
