"""The project's one ``CDMSClient``, built from ``settings.CDMS`` on first use, the N+1
detector listening to its requests (``nplusone``)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.signals import setting_changed

from cdms_api.client import CDMSClient
from cdms_api.session import RequestRecord

from .mapping import synced_models
from .metrics import count_request, count_wait, entity_set_of
from .nplusone import DEFAULT_THRESHOLD, Detector
from .shared import DjangoTokenCache

logger = logging.getLogger("migrator")
_lock = threading.Lock()
_client: CDMSClient | None = None


def client() -> CDMSClient:
    global _client
    with _lock:
        if _client is None:
            _client = CDMSClient.from_settings(settings.CDMS, keys=_keys(), **_shared())
            threshold = setting("N_PLUS_ONE_THRESHOLD", DEFAULT_THRESHOLD)
            _client.session.listeners += [Detector(threshold), log_request, count_request]
            _client.session.wait_listeners.append(count_wait)
        return _client


def log_request(record: RequestRecord) -> None:
    """Every attempt of the project's client, one DEBUG line on the ``migrator`` logger, its
    figures also as the record's ``cdms`` attribute for a structured formatter (the query
    options are left out: a filter may hold personal data)."""
    fields = {
        "entity_set": entity_set_of(record.url),
        "method": record.method,
        "status": record.status,
        "error": record.error,
        "ms": round(record.duration_s * 1000, 1),
        "attempt": record.attempt,
    }
    logger.debug(
        "remote %s %s -> %s in %.1f ms (attempt %d)",
        record.method,
        fields["entity_set"],
        record.status or record.error,
        fields["ms"],
        record.attempt,
        extra={"cdms": fields},
    )


def _keys() -> dict[str, str]:
    """Remote keys of every synced model, so the client names them right."""
    keys = dict(settings.CDMS.get("KEYS", {}))
    for model in synced_models():
        keys.setdefault(model.cdms.entity_set, model.cdms.key)
    return keys


def _shared() -> dict:
    """``TOKEN_CACHE`` may name one of the project's Django caches rather than Redis."""
    cache = settings.CDMS.get("TOKEN_CACHE")
    if cache and "://" not in cache:
        return {"token_cache": DjangoTokenCache(cache)}
    return {}


def reset(**kwargs) -> None:
    """Forget the client (settings changed); the next call builds a new one."""
    global _client
    if kwargs.get("setting", "CDMS") != "CDMS":
        return
    with _lock:
        if _client is not None:
            _client.close()
        _client = None


def setting(name: str, default):
    return settings.CDMS.get(name, default)


setting_changed.connect(reset)
