"""The project's one ``CDMSClient``, built from ``settings.CDMS`` on first use, the N+1
detector listening to its requests (``nplusone``)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.signals import setting_changed

from cdms_api.client import CDMSClient

from .mapping import synced_models
from .nplusone import DEFAULT_THRESHOLD, Detector
from .shared import DjangoTokenCache

_lock = threading.Lock()
_client: CDMSClient | None = None


def client() -> CDMSClient:
    global _client
    with _lock:
        if _client is None:
            _client = CDMSClient.from_settings(settings.CDMS, keys=_keys(), **_shared())
            threshold = setting("N_PLUS_ONE_THRESHOLD", DEFAULT_THRESHOLD)
            _client.session.listeners.append(Detector(threshold))
        return _client


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
