"""A Dataverse-like OData v4 server for tests, the demo and benchmarks. See docs/simulator.md."""

from .app import Simulator
from .auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from .server import SimulatorServer

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "Simulator", "SimulatorServer"]
