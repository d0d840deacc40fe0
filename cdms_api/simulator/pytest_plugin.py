"""Pytest fixtures for the simulator, registered as a pytest plugin by this package.

- ``cdms_simulator_server``: one simulator for the test session, on a free loopback port.
- ``cdms_simulator``: a ``SimulatorHandle`` on it, reset to the seed data before each test.

``--cdms-seed`` (or the ini option ``cdms_seed``) chooses the seed data: ``demo`` or ``none``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .app import Simulator
from .server import SimulatorServer
from .testing import SimulatorHandle


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cdms-seed", default=None, help="simulator seed data: demo or none")
    parser.addini("cdms_seed", "simulator seed data: demo or none", default="demo")


@pytest.fixture(scope="session")
def cdms_simulator_server(pytestconfig: pytest.Config) -> Iterator[SimulatorServer]:
    seed = pytestconfig.getoption("--cdms-seed") or pytestconfig.getini("cdms_seed")
    with SimulatorServer(Simulator(seed=seed)) as server:
        yield server


@pytest.fixture
def cdms_simulator(cdms_simulator_server: SimulatorServer) -> SimulatorHandle:
    handle = SimulatorHandle(cdms_simulator_server.root_url)
    handle.reset()
    return handle
