"""Prometheus metrics, when ``prometheus_client`` is installed (``django-cdms[metrics]``);
without it every function here does nothing.

Counted in each process as it happens (the project's client reports every attempt):

- ``cdms_remote_requests_total{entity_set, method, status}``: HTTP attempts; ``status`` is
  the HTTP status, or the error's name when no answer came (``TransportError``,
  ``RemoteTimeout``);
- ``cdms_remote_request_seconds{entity_set, method}``: their latency;
- ``cdms_remote_retries_total{entity_set, method}``: attempts that were a retry;
- ``cdms_remote_throttled_total{entity_set}``: 429 answers;
- ``cdms_remote_retry_wait_seconds_total{reason}``: time spent waiting before retries,
  ``throttled`` (a 429's ``Retry-After``, or backoff) or ``transient`` (5xx, no answer);
- ``cdms_records_synced_total{model, change}``: rows the loader created or updated from
  remote records (synced reads, resync, the change feed, the answers to writes), and rows
  deleted by resync and the change feed.

Read from the database at each scrape (the same whichever process answers):

- ``cdms_resync_lag_seconds{model}``: time since the model's last successful resync;
- ``cdms_drift_records{model}``: differences the last ``cdms_verify`` found;
- ``cdms_verify_age_seconds{model}``: time since that verify.

``metrics_view`` serves them (``migrator.urls``: ``health/cdms/metrics/``). Behind a server
of several worker processes (gunicorn, Celery's prefork pool), set the environment variable
``PROMETHEUS_MULTIPROC_DIR`` to an empty directory of their own before they start: each
process then writes its counters there and the view adds them all up
(``prometheus_client.multiprocess``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from django.utils import timezone

from cdms_api.session import RequestRecord

try:
    import prometheus_client as prom
    from prometheus_client import multiprocess
    from prometheus_client.core import GaugeMetricFamily
except ModuleNotFoundError:  # the [metrics] extra is not installed
    prom = None

ENTITY_SET = re.compile(r"/api/data/v[\d.]+/([^/(?]+)")

if prom is not None:
    REQUESTS = prom.Counter(
        "cdms_remote_requests", "Remote HTTP attempts", ["entity_set", "method", "status"]
    )
    LATENCY = prom.Histogram(
        "cdms_remote_request_seconds", "Remote request latency", ["entity_set", "method"]
    )
    RETRIES = prom.Counter(
        "cdms_remote_retries", "Remote attempts that were retries", ["entity_set", "method"]
    )
    THROTTLED = prom.Counter("cdms_remote_throttled", "429 answers", ["entity_set"])
    WAITS = prom.Counter("cdms_remote_retry_wait_seconds", "Time waited before retries", ["reason"])
    SYNCED = prom.Counter(
        "cdms_records_synced", "Rows written by inbound pages", ["model", "change"]
    )


def entity_set_of(url: str) -> str:
    """``accounts`` for ``.../api/data/v9.2/accounts(<key>)?...``; ``$batch`` likewise."""
    match = ENTITY_SET.search(urlsplit(url).path)
    return match.group(1) if match else "other"


def count_request(record: RequestRecord) -> None:
    """A request listener of the project's client (``remote.client``)."""
    if prom is None:
        return
    entity_set = entity_set_of(record.url)
    status = str(record.status) if record.status is not None else record.error or "none"
    REQUESTS.labels(entity_set, record.method, status).inc()
    LATENCY.labels(entity_set, record.method).observe(record.duration_s)
    if record.attempt > 1:
        RETRIES.labels(entity_set, record.method).inc()
    if record.status == 429:
        THROTTLED.labels(entity_set).inc()


def count_wait(seconds: float, throttled: bool) -> None:
    """A wait listener of the project's client."""
    if prom is not None:
        WAITS.labels("throttled" if throttled else "transient").inc(seconds)


def count_loaded(model: type, created: int, updated: int) -> None:
    """Rows the loader wrote."""
    if prom is None:
        return
    for change, count in (("created", created), ("updated", updated)):
        if count:
            SYNCED.labels(model._meta.label, change).inc(count)


def count_deleted(sender, deleted=(), **kwargs) -> None:
    """A ``records_synced`` receiver: the rows resync and the change feed deleted."""
    if prom is not None and deleted:
        SYNCED.labels(sender._meta.label, "deleted").inc(len(deleted))


class StateCollector:
    """The figures ``SyncState`` holds, read at each scrape."""

    def collect(self) -> Iterator:
        from .state import SyncState

        now = timezone.now()
        lag = GaugeMetricFamily(
            "cdms_resync_lag_seconds", "Time since the last successful resync", labels=["model"]
        )
        drift = GaugeMetricFamily(
            "cdms_drift_records", "Differences the last cdms_verify found", labels=["model"]
        )
        age = GaugeMetricFamily(
            "cdms_verify_age_seconds", "Time since the last cdms_verify", labels=["model"]
        )
        for state in SyncState.objects.all():
            if state.lag is not None:
                lag.add_metric([state.model], state.lag.total_seconds())
            if state.drift is not None:
                drift.add_metric([state.model], state.drift)
                age.add_metric([state.model], (now - state.verified_at).total_seconds())
        yield from (lag, drift, age)


def _counted():
    """The counters: every process's (``PROMETHEUS_MULTIPROC_DIR``), or this one's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return prom.REGISTRY


def summary() -> str | None:
    """The counters in a line, for ``cdms_status``; None without ``prometheus_client``."""
    if prom is None:
        return None
    totals: dict[str, float] = {}
    failed = 0.0
    for metric in _counted().collect():
        for s in metric.samples:
            if s.name.endswith("_total") and s.name.startswith("cdms_"):
                totals[s.name] = totals.get(s.name, 0) + s.value
                status = s.labels.get("status", "")
                if s.name == "cdms_remote_requests_total" and not status.startswith(("2", "3")):
                    failed += s.value
    where = "all processes" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "this process"
    requests = totals.get("cdms_remote_requests_total", 0)
    waited = totals.get("cdms_remote_retry_wait_seconds_total", 0)
    return (
        f"remote ({where}): {requests:,.0f} requests, {failed:,.0f} failed, "
        f"{totals.get('cdms_remote_throttled_total', 0):,.0f} throttled, "
        f"{totals.get('cdms_remote_retries_total', 0):,.0f} retries, {waited:,.1f} s waited"
    )


def exposition() -> tuple[bytes, str] | None:
    """The metrics in Prometheus's text format and its content type; None without
    ``prometheus_client``."""
    if prom is None:
        return None
    counted = _counted()
    read = prom.CollectorRegistry(auto_describe=False)
    read.register(StateCollector())
    return prom.generate_latest(counted) + prom.generate_latest(read), prom.CONTENT_TYPE_LATEST
