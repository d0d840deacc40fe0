"""A Dataverse-like OData v4 server for tests, the demo and benchmarks. See docs/simulator.md.

Its demo credentials import with the library alone; the server needs the ``simulator`` extra
(Werkzeug, odata-query, PyYAML), and says so when it is missing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .auth import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

if TYPE_CHECKING:
    from .app import Simulator
    from .server import SimulatorServer

__all__ = ["DEMO_CLIENT_ID", "DEMO_CLIENT_SECRET", "Simulator", "SimulatorServer"]


def __getattr__(name: str) -> Any:
    """``Simulator`` and ``SimulatorServer`` are imported when first asked for."""
    if name == "Simulator":
        from .app import Simulator

        return Simulator
    if name == "SimulatorServer":
        from .server import SimulatorServer

        return SimulatorServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
