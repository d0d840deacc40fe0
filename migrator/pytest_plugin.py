"""Pytest fixtures for projects with synced models (registered as a pytest plugin).

- ``cdms_remote_calls``: a ``RemoteCallCounter`` recording every remote request made during
  the test: ``assert len(cdms_remote_calls) == 2``.
- ``assert_num_remote_calls``: the ``assertNumRemoteCalls(n)`` context manager.
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
