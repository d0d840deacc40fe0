"""Reads backed by the change feed: exact at any size, one request when nothing changed.

A model whose ``class CDMS`` says ``reads = "changes"`` (``CDMS["READS"]`` sets the default)
sends no filter to the remote. Before a read, the changes since the stored delta link are
applied (``resync``'s incremental run: one request, usually answered empty), and Django then
answers from the local table alone, exactly: any lookup, any ordering, any slice, counts and
aggregates past 5,000, ``raw()``.

- **Freshness**: reads within ``CDMS["FRESHNESS_MS"]`` (default 0: always check) of the last
  check share it, within a process and across processes (the time of the last check is kept
  in Redis, beside the resync lock).
- **Once**: a reader takes the model's resync lock (waiting up to ``CDMS["FEED_WAIT_S"]``, 300
  s, for a resync in progress), so each change is applied once. A reader that gets the lock
  after another one checked since it asked returns without a request of its own: it never
  answers with rows older than the check it waited for.
- **Filled first**: a model never resynced, or whose delta link has expired, is filled (or
  refilled) by a full resync before its read, said in the log with its progress.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import TYPE_CHECKING

from cdms_api.errors import CDMSError

from . import remote
from .locks import MEMORY, ResyncLock, lock_url, redis_client
from .mapping import Mapping
from .resync import resync_held
from .state import SyncState

if TYPE_CHECKING:
    from django.db import models

logger = logging.getLogger("migrator.feed")
DEFAULT_WAIT_S = 300.0

_checked_here: dict[str, float] = {}  # its Redis key -> the last check this process knows of


class FeedTimeout(CDMSError):
    """A changes-backed read waited ``CDMS["FEED_WAIT_S"]`` for a resync of its model to end,
    or found a partitioned full resync of it in progress; nothing was read."""


def reads_changes(model: type[models.Model]) -> bool:
    mapping = getattr(model, "cdms", None)
    if not isinstance(mapping, Mapping):
        return False
    return (mapping.reads or remote.setting("READS", "filtered")) == "changes"


def catch_up(model: type[models.Model]) -> None:
    """Bring the model's local table up to the remote's change feed (see the module)."""
    label = model._meta.label
    asked = time.time()
    freshness = remote.setting("FRESHNESS_MS", 0) / 1000
    if freshness and (asked - _checked_here.get(_key(label), 0) <= freshness):
        return
    if freshness and asked - _last_check(label) <= freshness:
        return
    wait = float(remote.setting("FEED_WAIT_S", DEFAULT_WAIT_S))
    with ResyncLock(label, wait_s=wait) as held:
        if not held:
            raise FeedTimeout(f"{label}: no read after {wait:.0f} s waiting for its resync")
        if _last_check(label) >= asked:  # another reader checked since this one asked
            return
        checked = time.time()
        state = SyncState.of(model)
        progress = None
        if not state.delta_link and not state.watermark:
            logger.warning(
                "%s: reads are backed by the change feed, and its table was never filled: "
                "a full resync first",
                label,
            )
            progress = functools.partial(_log_progress, label)
        outcome = resync_held(model, progress=progress, state=state)
        if not outcome.ran:  # a partitioned full resync: its table is half filled until it ends
            raise FeedTimeout(f"{label}: no read while {outcome.note}")
        _note_check(label, checked)


def _log_progress(label: str, done: int, total: int | None) -> None:
    of = f" of {total:,}" if total else ""
    logger.info("%s: filling the local table: %s records%s", label, f"{done:,}", of)


def _key(label: str) -> str:
    return f"{remote.setting('LOCK_PREFIX', 'cdms:resync:')}checked:{label}"


def _last_check(label: str) -> float:
    if lock_url() == MEMORY:
        return _checked_here.get(_key(label), 0.0)
    value = redis_client(lock_url()).get(_key(label))
    checked = float(value) if value else 0.0
    _checked_here[_key(label)] = max(_checked_here.get(_key(label), 0.0), checked)
    return checked


def _note_check(label: str, checked: float) -> None:
    if lock_url() != MEMORY:
        redis_client(lock_url()).set(_key(label), repr(checked))
    _checked_here[_key(label)] = checked
