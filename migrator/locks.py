"""One resync of a model at a time, across processes and machines: a lock in Redis.

The lock expires ``CDMS["RESYNC_LOCK_TTL_S"]`` seconds (60) after it was last renewed; a
thread renews it every third of that while the resync runs, however long one page takes. A
worker killed with SIGKILL stops renewing it, so the lock frees itself within the TTL and the
next resync resumes the run from its checkpoint. Redis is ``CDMS["LOCK_URL"]``, or else the
Celery broker (``CELERY_BROKER_URL``) when that is Redis. ``CDMS["LOCK_URL"] = "memory://"``
keeps the locks in this process instead, for a project that runs in one process (the demo):
they are nothing to other processes."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
from types import TracebackType

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cdms_api.errors import CDMSError
from cdms_api.extras import MissingExtra

from .remote import setting

try:
    import redis
    from redis.exceptions import LockError
except ModuleNotFoundError:  # the [redis] extra: needed once a Redis URL is used, not for memory://
    redis = None
    LockError = RuntimeError

logger = logging.getLogger("migrator.resync")
DEFAULT_TTL_S = 60.0
MEMORY = "memory://"
_in_process: dict[str, threading.Lock] = {}
_in_process_guard = threading.Lock()


class LockLost(CDMSError):
    """The resync lock expired while its run went on (not renewed within its TTL: a stalled
    worker, a Redis restart). Another run may have begun: this one stops before it writes
    anything more, and leaves the model's state to the run that holds the lock."""


_held: contextvars.ContextVar[ResyncLock | None] = contextvars.ContextVar(
    "cdms_resync_lock", default=None
)


def ensure_held() -> None:
    """``LockLost`` when the resync lock this thread took last is no longer its own: called
    before each write of a run (its pages, its deletes)."""
    lock = _held.get()
    if lock is not None and not lock.owned():
        raise LockLost(f"lost the lock {lock.name}: another resync may have begun")


def lock_url() -> str:
    url = setting("LOCK_URL", None) or getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://", "unix://", MEMORY)):
        raise ImproperlyConfigured(
            "Resync takes its lock in Redis: set CDMS['LOCK_URL'] (or a Redis CELERY_BROKER_URL)"
        )
    return url


@functools.lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """The client of the Redis at ``url`` (one per process: its pool keeps the connections
    open from one lock to the next, and makes new ones in a forked child), or
    ``MissingExtra`` when the package is not installed."""
    if redis is None:
        raise MissingExtra("Locks and shared checks in Redis", "redis", "redis")
    return redis.Redis.from_url(url)


class ResyncLock:
    """``with ResyncLock("core.Organisation") as held:`` -- ``held`` is False when another
    resync of that model holds it: at once, or after waiting ``wait_s`` for it."""

    def __init__(self, name: str, wait_s: float = 0.0):
        ttl = float(setting("RESYNC_LOCK_TTL_S", DEFAULT_TTL_S))
        prefix = setting("LOCK_PREFIX", "cdms:resync:")
        if lock_url() == MEMORY:
            self._lock = _ProcessLock(prefix + name)
        else:
            # not thread-local: the renewing thread needs the token too
            self._lock = redis_client(lock_url()).lock(
                prefix + name, timeout=ttl, thread_local=False
            )
        self._every, self._wait_s = ttl / 3, wait_s
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._token: contextvars.Token | None = None

    @property
    def name(self) -> str:
        return self._lock.name

    def owned(self) -> bool:
        """Whether this lock is still this holder's (one Redis round trip)."""
        return self._lock.owned()

    def __enter__(self) -> bool:
        if not self._lock.acquire(blocking=self._wait_s > 0, blocking_timeout=self._wait_s):
            return False
        self._renewer = threading.Thread(target=self._renew, daemon=True, name="cdms-lock")
        self._renewer.start()
        self._token = _held.set(self)
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._lock.reacquire()
            except LockError:
                logger.error("lost the lock %s: another resync may start", self._lock.name)
                return

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._renewer is None:
            return
        _held.reset(self._token)
        self._stop.set()
        self._renewer.join()
        with contextlib.suppress(LockError):  # lost, and said so
            self._lock.release()


class _ProcessLock:
    """A lock of this process, with the methods of Redis's that ``ResyncLock`` uses."""

    def __init__(self, name: str):
        with _in_process_guard:
            self._lock = _in_process.setdefault(name, threading.Lock())

    def acquire(self, blocking: bool, blocking_timeout: float | None) -> bool:
        if not blocking:
            return self._lock.acquire(False)
        return self._lock.acquire(True, -1 if blocking_timeout is None else blocking_timeout)

    def reacquire(self) -> None:
        """Never expires: nothing to renew."""

    def owned(self) -> bool:
        return True

    def release(self) -> None:
        self._lock.release()

    @property
    def name(self) -> str:
        return repr(self._lock)
