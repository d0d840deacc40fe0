"""The Django side of the ORM benchmarks: the example project (``core.settings``;
``DATABASE_URL`` chooses SQLite or PostgreSQL) on a throwaway database made with Django's
test-database utilities -- never the developer's own -- and ``settings.CDMS`` pointed at a
simulator in a process of its own."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from cdms_api.client import CDMSClient
from cdms_api.simulator.testing import SimulatorHandle, simulator_process

from .measure import Counts, Journal, Plan
from .plain import PAGE_SIZE


class QueriesAndJournal(Journal):
    """The simulator's counts, and the local queries."""

    def count(self, action: Callable[[], Any]) -> Counts:
        with CaptureQueriesContext(connection) as queries:
            counts = super().count(action)
        counts.queries = len(queries)
        return counts


@dataclass
class Environment:
    simulator: SimulatorHandle
    crm: CDMSClient  # another user of the CRM, changing records behind the ORM's back

    @property
    def journal(self) -> Journal:
        return QueriesAndJournal(self.simulator)


@contextmanager
def environment(plan: Plan) -> Iterator[Environment]:
    """A throwaway database with the project's tables, and the ORM pointed at a simulator;
    the database is dropped on exit."""
    settings_dict = connection.settings_dict
    with tempfile.TemporaryDirectory(prefix="cdms-benchmarks-") as scratch:
        settings_dict.setdefault("TEST", {})["NAME"] = (
            str(Path(scratch) / "benchmarks.sqlite3")
            if connection.vendor == "sqlite"
            else f"{settings_dict['NAME']}_benchmarks"
        )
        original = connection.creation.create_test_db(
            verbosity=0, autoclobber=True, serialize=False
        )
        try:
            with (
                simulator_process() as simulator,
                override_settings(DEBUG=False, CDMS=cdms_settings(simulator, plan)),
            ):
                crm = CDMSClient(
                    simulator.base_url,
                    token_url=simulator.token_url,
                    client_id=simulator.client_id,
                    client_secret=simulator.client_secret,
                )
                try:
                    yield Environment(simulator, crm)
                finally:
                    crm.close()
        finally:
            connection.creation.destroy_test_db(original, verbosity=0)


def cdms_settings(simulator: SimulatorHandle, plan: Plan) -> dict[str, Any]:
    return {
        "BASE_URL": simulator.base_url,
        "AUTH": {
            "TOKEN_URL": simulator.token_url,
            "CLIENT_ID": simulator.client_id,
            "CLIENT_SECRET": simulator.client_secret,
        },
        "PAGE_SIZE": PAGE_SIZE,
        "MAX_SYNC_ROWS": 2 * max(plan.sizes),  # every read of a group is whole
    }


def database() -> dict[str, str]:
    """Which database the ORM benchmarks ran on."""
    if connection.vendor == "sqlite":
        return {"vendor": "sqlite", "version": sqlite3.sqlite_version}
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return {"vendor": connection.vendor, "version": version}
