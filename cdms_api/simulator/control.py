"""What tests steer through ``/__admin/``: injected faults, the request journal, a throttle."""

from __future__ import annotations

import contextlib
import math
import random
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from .errors import (
    CONCURRENCY_LIMIT,
    EXECUTION_TIME_LIMIT,
    THROTTLED,
    UNEXPECTED,
    DataverseError,
)

ACTIONS = ("respond", "drop", "apply_then_fail", "pass")


@dataclass
class FaultRule:
    """Answer matching requests with ``status`` (``respond``), close the connection without an
    answer (``drop``), or apply the request and then answer ``status`` -- or drop, when no
    status is given (``apply_then_fail``), or serve it as usual (``pass``: a slow remote, with
    ``delay_ms``). ``times`` = None matches for ever. ``chance`` (0 to 1): the share of
    matching requests the rule takes, at random; a request it leaves goes on to the next rule
    (a fault soak injects each kind on a share of every request)."""

    path: str = ".*"
    method: str | None = None
    times: int | None = 1
    status: int | None = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay_ms: int = 0
    action: str = "respond"
    chance: float = 1.0

    @classmethod
    def from_json(cls, spec: Any) -> FaultRule:
        if not isinstance(spec, dict):
            raise ValueError("a fault rule is a JSON object")
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault rule fields: {sorted(unknown)}")
        rule = cls(**spec)
        if rule.action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        if rule.action == "respond" and rule.status is None:
            raise ValueError("a respond rule needs a status")
        if rule.status is not None and not (_is_int(rule.status) and 100 <= rule.status <= 599):
            raise ValueError("status must be an HTTP status code (100-599) or null")
        if rule.times is not None and not (_is_int(rule.times) and rule.times > 0):
            raise ValueError("times must be a positive integer, or null for ever")
        if isinstance(rule.delay_ms, bool) or not isinstance(rule.delay_ms, int | float):
            raise ValueError("delay_ms must be a number")
        if rule.delay_ms < 0:
            raise ValueError("delay_ms must not be negative")
        if isinstance(rule.chance, bool) or not isinstance(rule.chance, int | float | Decimal):
            raise ValueError("chance must be a number")
        rule.chance = float(rule.chance)  # the control API reads JSON numbers as Decimal
        if not 0 < rule.chance <= 1:
            raise ValueError("chance must be more than 0 and at most 1")
        if rule.method is not None and not isinstance(rule.method, str):
            raise ValueError("method must be a string or null")
        if not isinstance(rule.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rule.headers.items()
        ):
            raise ValueError("headers must map names to string values")
        if not isinstance(rule.path, str):
            raise ValueError("path must be a regular expression")
        try:
            re.compile(rule.path)
        except re.error as error:
            raise ValueError(f"path is not a valid regular expression: {error}") from None
        return rule

    def matches(self, method: str, path: str) -> bool:
        return (self.method in (None, "*") or self.method.upper() == method) and bool(
            re.search(self.path, path)
        )

    @property
    def kind(self) -> str:
        """What the rule does, as the journal names it: ``503``, ``drop``, ``slow 700 ms``,
        ``apply_then_fail 503``, ``apply_then_fail drop``."""
        if self.action == "respond":
            return str(self.status)
        if self.action == "pass":
            return f"slow {self.delay_ms:g} ms"
        if self.action == "drop":
            return "drop"
        return f"apply_then_fail {self.status or 'drop'}"

    def error_body(self) -> Any:
        if self.body is not None:
            return self.body
        if self.status == 429:
            return DataverseError(429, THROTTLED, "Number of requests exceeded the limit.").body()
        return DataverseError(
            self.status or 500, UNEXPECTED, "An unexpected error occurred."
        ).body()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Faults:
    def __init__(self):
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def listing(self) -> list[dict]:
        with self._lock:
            return [asdict(rule) for rule in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """The first rule matching the request, counting one use of it."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and (
                    rule.chance >= 1 or random.random() < rule.chance
                ):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule
        return None


class Journal:
    def __init__(self, size: int = 100_000):
        self._entries: deque[dict] = deque(maxlen=size)
        self._lock = threading.Lock()

    def record(self, **entry: Any) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class Throttle:
    """Dataverse's service protection limits, per user (the client a token was issued to),
    across every connection: at most ``limit`` requests and ``execution_s`` seconds of
    execution in a sliding ``window_s``, and ``concurrency`` requests at once; past any of
    them, 429 with ``Retry-After`` and the code and message Dataverse answers (the "Service
    protection API limits" page of the Power Apps developer docs). None: no such limit."""

    def __init__(self):
        self.limit: int | None = None
        self.execution_s: float | None = None
        self.concurrency: int | None = None
        self.window_s: float = 300
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._spent: dict[str, deque[tuple[float, float]]] = defaultdict(deque)
        self._in_flight: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def configure(
        self,
        limit: int | None,
        window_s: float = 300,
        execution_s: float | None = None,
        concurrency: int | None = None,
    ) -> None:
        for name, value in (("limit", limit), ("concurrency", concurrency)):
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"{name} must be a whole number, not negative")
        if execution_s is not None and not execution_s > 0:
            raise ValueError("execution_s must be positive")
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        with self._lock:
            self.limit, self.window_s = limit, window_s
            self.execution_s, self.concurrency = execution_s, concurrency
            self._seen.clear()
            self._spent.clear()

    @contextlib.contextmanager
    def serving(self, client: str) -> Iterator[None]:
        """Admit a request of ``client`` (or raise the 429), and count it while it runs."""
        now = time.monotonic()
        with self._lock:
            self._refuse_past_limits(client, now)
            if self.limit is not None:
                self._seen[client].append(now)
            self._in_flight[client] += 1
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[client] -= 1
                if self.execution_s is not None:
                    self._spent[client].append((time.monotonic(), time.perf_counter() - started))

    def _refuse_past_limits(self, client: str, now: float) -> None:
        seen, spent = self._seen[client], self._spent[client]
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        while spent and spent[0][0] <= now - self.window_s:
            spent.popleft()
        if self.concurrency is not None and self._in_flight[client] >= self.concurrency:
            raise _throttled(
                CONCURRENCY_LIMIT,
                f"Number of concurrent requests exceeded the limit of {self.concurrency}.",
                1,
            )
        if self.limit is not None and len(seen) >= self.limit:
            frees_at = seen[0] + self.window_s if seen else now + self.window_s
            raise _throttled(
                THROTTLED,
                f"Number of requests exceeded the limit of {self.limit} over time window of "
                f"{self.window_s:g} seconds.",
                frees_at - now,
            )
        if self.execution_s is not None and sum(d for _, d in spent) >= self.execution_s:
            raise _throttled(
                EXECUTION_TIME_LIMIT,
                "Combined execution time of incoming requests exceeded limit of "
                f"{self.execution_s * 1000:,.0f} milliseconds over time window of "
                f"{self.window_s:g} seconds. Decrease number of concurrent requests or reduce "
                "the duration of requests and try again later.",
                spent[0][0] + self.window_s - now,
            )


def _throttled(code: str, message: str, retry_after_s: float) -> DataverseError:
    return DataverseError(
        429, code, message, {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
    )
