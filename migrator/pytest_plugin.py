"""Pytest fixtures for projects with synced models (registered as a pytest plugin).

- ``cdms_remote_calls``: a ``RemoteCallCounter`` recording every remote request made during
  the test: ``assert len(cdms_remote_calls) == 2``.
- ``assert_num_remote_calls``: the ``assertNumRemoteCalls(n)`` context manager.
- ``cdms_simulator_settings``: ``settings.CDMS`` pointed at the per-test simulator
  (``cdms_simulator``, reset to its seed data), with quick retries; yields the simulator's
  handle. Needs pytest-django's ``settings`` fixture.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def cdms_remote_calls():
    from .testing import RemoteCallCounter

    with RemoteCallCounter() as counter:
        yield counter


@pytest.fixture
def assert_num_remote_calls():
    from .testing import assertNumRemoteCalls

    return assertNumRemoteCalls


@pytest.fixture
def cdms_simulator_settings(cdms_simulator, settings):
    from . import remote

    settings.CDMS = cdms_simulator.client_settings(
        RETRY={"attempts": 3, "backoff_s": 0.01, "budget_s": 5}
    )
    remote.reset()
    yield cdms_simulator
    remote.reset()
