"""Pytest fixtures for the simulator, registered as a pytest plugin by this package.

- ``cdms_simulator_server``: one simulator for the test session, on a free loopback port.
- ``cdms_simulator``: a ``SimulatorHandle`` on it, reset to the seed data before each test.

``--cdms-seed`` (or the ini option ``cdms_seed``) chooses the seed data: ``demo`` or ``none``;
``--cdms-schema`` (or ``cdms_schema``) a schema file of one's own (JSON or YAML) in place of the
demo schema. A project with synced Django models also has ``cdms_simulator_settings`` (from
``migrator``'s plugin), which points ``settings.CDMS`` at this simulator.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..extras import MissingExtra

try:
    from .app import Simulator
    from .schema import Schema
    from .server import SimulatorServer
    from .testing import SimulatorHandle
except MissingExtra as error:  # the plugin loads with the library; its fixtures need the extra
    missing: MissingExtra | None = error
else:
    missing = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cdms-seed", default=None, help="simulator seed data: demo or none")
    parser.addini("cdms_seed", "simulator seed data: demo or none", default="demo")
    parser.addoption("--cdms-schema", default=None, help="simulator schema file (JSON or YAML)")
    parser.addini("cdms_schema", "simulator schema file (JSON or YAML)", default="")


@pytest.fixture(scope="session")
def cdms_simulator_server(pytestconfig: pytest.Config) -> Iterator[SimulatorServer]:
    if missing is not None:
        raise missing
    seed = pytestconfig.getoption("--cdms-seed") or pytestconfig.getini("cdms_seed")
    schema_file = pytestconfig.getoption("--cdms-schema") or pytestconfig.getini("cdms_schema")
    schema = Schema.load(pytestconfig.rootpath / schema_file) if schema_file else None
    with SimulatorServer(Simulator(schema, seed=seed)) as server:
        yield server


@pytest.fixture
def cdms_simulator(cdms_simulator_server: SimulatorServer) -> SimulatorHandle:
    handle = SimulatorHandle(cdms_simulator_server.root_url)
    handle.reset()
    return handle
