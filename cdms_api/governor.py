"""The remote's request budget, shared: a governor admits each request before it is sent.

Dataverse limits each user (an application user included) to 6,000 requests and 1,200 seconds
of execution in a sliding 5-minute window, and 52 requests at once, and answers 429 past them.
Every process that uses one application user shares those limits without knowing of the
others; a governor (``cdms_api.shared.RedisGovernor``) counts for all of them, so a process
waits for its turn instead of sending a request bound to be refused.

The session asks ``admit(priority)`` before each attempt, and ``release(seconds)`` the permit
after the answer. Interactive work (a web request's read) goes ahead of background work (a
resync): code marks its requests with ``with background():``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

INTERACTIVE, BACKGROUND = 0, 1
_priority: ContextVar[int] = ContextVar("cdms_api_priority", default=INTERACTIVE)


@contextlib.contextmanager
def background() -> Iterator[None]:
    """Requests sent inside wait behind every interactive request that is waiting."""
    token = _priority.set(BACKGROUND)
    try:
        yield
    finally:
        _priority.reset(token)


def priority() -> int:
    return _priority.get()


@dataclass(frozen=True)
class Limits:
    """A user's service protection limits; Dataverse's by default."""

    requests: int = 6000
    window_s: float = 300.0
    execution_s: float = 1200.0
    concurrency: int = 52

    def __post_init__(self) -> None:
        if self.requests < 1 or self.concurrency < 1:
            raise ValueError("requests and concurrency must be at least 1")
        if self.window_s <= 0 or self.execution_s <= 0:
            raise ValueError("window_s and execution_s must be positive")


class Permit(Protocol):
    def release(self, duration_s: float) -> None:
        """The request is answered after ``duration_s``: it counts for the execution time."""


class Governor(Protocol):
    def admit(self, priority: int) -> Permit:
        """Wait until a request may be sent; raise ``Throttled`` if that takes too long."""

    def throttled(self, retry_after: float | None) -> None:
        """The remote answered 429 all the same: every process holds back for that long."""
