"""The bearer token shared by the processes of a project through one of its Django caches
(``CDMS["TOKEN_CACHE"]`` = the cache's alias): one token request per expiry for every web
process and worker, on whatever cache backend the project runs (Redis, Memcached, a
database table). ``cdms_api.shared.RedisTokenCache`` does the same without Django."""

from __future__ import annotations

import contextlib
import hashlib
import time
import uuid
from collections.abc import Iterator

from django.core.cache import caches

from cdms_api.auth import AccessToken


class DjangoTokenCache:
    """Tokens in the Django cache ``alias``; a renewal is claimed with ``cache.add``, which
    every backend makes atomic, and the others wait (``renew_timeout_s`` at most) for it."""

    def __init__(self, alias: str = "default", renew_timeout_s: float = 60.0):
        self.alias, self.renew_timeout_s = alias, renew_timeout_s

    def __repr__(self) -> str:
        return f"DjangoTokenCache({self.alias!r})"

    @property
    def cache(self):
        return caches[self.alias]

    @staticmethod
    def _key(key: str) -> str:
        return "cdms:token:" + hashlib.sha256(key.encode()).hexdigest()[:24]

    def get(self, key: str) -> AccessToken | None:
        stored = self.cache.get(self._key(key))
        return None if stored is None else AccessToken(stored[1], stored[0])

    def put(self, key: str, token: AccessToken) -> None:
        ttl = token.expires_on - time.time()
        if ttl > 0:
            self.cache.set(self._key(key), (token.expires_on, token.token), timeout=ttl)

    def discard(self, key: str, token: str) -> None:
        stored = self.get(key)
        if stored is not None and stored.token == token:
            self.cache.delete(self._key(key))

    @contextlib.contextmanager
    def renewing(self, key: str) -> Iterator[None]:
        lock, mine = self._key(key) + ":renewing", uuid.uuid4().hex
        deadline = time.monotonic() + self.renew_timeout_s
        while not self.cache.add(lock, mine, timeout=self.renew_timeout_s):
            if time.monotonic() > deadline:
                break  # the holder died: renew all the same
            time.sleep(0.05)
        try:
            yield
        finally:
            if self.cache.get(lock) == mine:
                self.cache.delete(lock)
