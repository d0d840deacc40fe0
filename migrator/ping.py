"""Is the CRM reachable as this project is configured? A token, ``WhoAmI``, one record of each
mapped entity set, each timed, in one report: what ``manage.py cdms_ping`` prints and what the
health-check view (``migrator.urls``) answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cdms_api.client import CDMSClient
from cdms_api.errors import CDMSError

from . import remote
from .synced import synced_models


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    ms: float


@dataclass
class PingReport:
    base_url: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "base_url": self.base_url, "steps": [asdict(s) for s in self.steps]}

    def lines(self) -> list[str]:
        width = max((len(s.name) for s in self.steps), default=0)
        lines = [f"{self.base_url}"]
        lines += [
            f"  {'ok  ' if s.ok else 'FAIL'} {s.name:<{width}}  {s.ms:8.1f} ms  {s.detail}"
            for s in self.steps
        ]
        total = sum(s.ms for s in self.steps)
        verdict = "all well" if self.ok else "FAILED"
        lines.append(f"  {verdict}: {len(self.steps)} steps in {total:.0f} ms")
        return lines


def _timed(report: PingReport, name: str, action: Callable[[], str]) -> bool:
    """Run one step; a remote error fails it, with the error's own words (never a secret)."""
    started = time.perf_counter()
    try:
        detail, ok = action(), True
    except CDMSError as error:
        detail, ok = f"{type(error).__name__}: {error}", False
    report.steps.append(Step(name, ok, detail, (time.perf_counter() - started) * 1000))
    return ok


def ping(client: CDMSClient | None = None) -> PingReport:
    client = client or remote.client()
    session = client.session
    report = PingReport(session.base_url)
    if session.auth is not None:

        def token() -> str:
            session.auth.authorization(session.timeout)
            return f"from {session.auth.source!r}"

        if not _timed(report, "token", token):
            return report  # nothing else can work
    _timed(report, "WhoAmI", lambda: f"user {client.whoami()['UserId']}")
    entity_sets: dict[str, list[str]] = {}
    for model in synced_models():
        entity_sets.setdefault(model.cdms.entity_set, []).append(model._meta.label)
    for entity_set, labels in entity_sets.items():

        def readable(entity_set=entity_set, labels=labels) -> str:
            found = list(client.iter(entity_set, select=[client.key_of(entity_set)], top=1))
            return f"readable ({', '.join(labels)}: {'a record read' if found else 'no record'})"

        _timed(report, entity_set, readable)
    return report
