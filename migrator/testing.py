"""Test helpers: count remote requests the way ``assertNumQueries`` counts queries, and fail
on the N+1 pattern (``nplusone``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from cdms_api.session import RequestRecord

from . import nplusone, remote


class RemoteCallCounter:
    """Records every HTTP attempt the project's client makes while active, and the N+1 runs
    seen meanwhile (``repeats``: their warnings' messages)."""

    def __init__(self) -> None:
        self.calls: list[RequestRecord] = []
        self.repeats: list[str] = []

    def __enter__(self) -> RemoteCallCounter:
        self._listeners = remote.client().session.listeners
        self._listeners.append(self.calls.append)
        nplusone.observers.append(self.repeats.append)
        return self

    def __exit__(self, *exc) -> None:
        self._listeners.remove(self.calls.append)
        nplusone.observers.remove(self.repeats.append)

    def __len__(self) -> int:
        return len(self.calls)

    def describe(self) -> str:
        return "\n".join(f"  {c.method} {c.url} -> {c.status or c.error}" for c in self.calls)


@contextmanager
def assertNumRemoteCalls(expected: int) -> Iterator[RemoteCallCounter]:
    """Fail unless the block makes exactly ``expected`` remote requests, and none of them in
    an N+1 run (``nplusone``: the same single-record read many times in a row)."""
    with RemoteCallCounter() as counter:
        yield counter
    if len(counter) != expected:
        raise AssertionError(
            f"{len(counter)} remote calls made, {expected} expected:\n{counter.describe()}"
        )
    if counter.repeats:
        raise AssertionError("\n".join(counter.repeats))


class CDMSTestCaseMixin:
    """``self.assertNumRemoteCalls(n)`` for ``unittest``/Django test cases."""

    def assertNumRemoteCalls(self, expected: int):
        return assertNumRemoteCalls(expected)
