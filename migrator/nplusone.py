"""The N+1 pattern: code that reads one record at a time, the same request again and again
with another key (``contact.organisation`` in a loop over contacts), where one query would
read them all (``select_related()``, ``prefetch_related()``, ``filter(pk__in=...)``).

``Detector`` listens to every request the project's client makes. When
``CDMS["N_PLUS_ONE_THRESHOLD"]`` (5) reads of one record by key, of the same shape, come in a
row, it warns once for the run (``RepeatedRequestWarning`` through ``warnings``, attributed to
the call site: the first frame outside Django, the project and the HTTP libraries; and the
``migrator`` logger). ``migrator.testing.assertNumRemoteCalls`` turns it into a failure of
the test. ``0`` turns the detector off."""

from __future__ import annotations

import logging
import re
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from urllib.parse import urlsplit

from cdms_api.session import RequestRecord

logger = logging.getLogger("migrator")
DEFAULT_THRESHOLD = 5
GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
ONE_KEY = re.compile(rf"\A\w+ eq {GUID.pattern}\Z")
#: code whose frames are not call sites: the project's, Django's, the HTTP libraries', and
#: the standard library's plumbing between them
NOT_CALL_SITES = (
    "migrator",
    "cdms_api",
    "django",
    "asgiref",
    "requests",
    "urllib3",
    "contextlib",
    "threading",
    "functools",
    "concurrent",
    "asyncio",
)
#: who hears of each N+1 run besides ``warnings`` and the logger (``testing``'s counters)
observers: list[Callable[[str], None]] = []


class RepeatedRequestWarning(UserWarning):
    """The same single-record remote read, with other keys, many times in a row."""


class Detector:
    """A request listener (``CDMSSession.listeners``) that spots N+1 runs, per thread."""

    def __init__(self, threshold: int = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self._state = threading.local()

    def __call__(self, record: RequestRecord) -> None:
        if record.attempt > 1 or self.threshold <= 0:
            return  # a retry is the same request, not another
        shape = single_record_shape(record)
        state = self._state
        if shape is None or shape != getattr(state, "shape", None):
            state.shape, state.count = shape, 1
            return
        state.count += 1
        if state.count == self.threshold:
            _report(shape, state.count)


def single_record_shape(record: RequestRecord) -> str | None:
    """What a read of one record by key asks, its key left out; None for any other request."""
    if record.method != "GET":
        return None
    params = dict(record.params or {})
    path = urlsplit(record.url).path
    condition = params.pop("$filter", None)
    params.pop("$top", None)
    if condition is None and GUID.search(path):
        shape = GUID.sub("<key>", path)
    elif condition is not None and ONE_KEY.match(condition):
        shape = f"{path}?$filter={GUID.sub('<key>', condition)}"
    else:
        return None
    return shape + "".join(f"&{name}={value}" for name, value in sorted(params.items()))


def _report(shape: str, count: int) -> None:
    frame = _call_site(sys._getframe())
    where = "an unknown place" if frame is None else _place(frame)
    message = (
        f"{count} remote reads of one record each in a row, all `GET {shape}` with another "
        f"key, from {where}: the N+1 pattern. Read the records in one query: "
        "select_related(), prefetch_related() or filter(pk__in=...)."
    )
    logger.warning(message)
    if frame is None:
        warnings.warn(message, RepeatedRequestWarning, stacklevel=2)
    else:
        warnings.warn_explicit(
            message,
            RepeatedRequestWarning,
            frame.f_code.co_filename,
            frame.f_lineno,
            module=frame.f_globals.get("__name__"),
            registry=frame.f_globals.setdefault("__warningregistry__", {}),
        )
    for observer in list(observers):
        observer(message)


def _call_site(frame: FrameType | None) -> FrameType | None:
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not any(module == name or module.startswith(f"{name}.") for name in NOT_CALL_SITES):
            return frame
        frame = frame.f_back
    return None


def _place(frame: FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"
