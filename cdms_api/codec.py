"""The one JSON codec of the Web API, for every request, ``$batch`` part and simulator answer:
decimals read and written as exact ``Decimal`` numbers, never as binary floats; dates, aware
datetimes (in UTC) and UUIDs written as the Web API writes them."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import simplejson

from .odata import literal


def dumps(data: Any) -> bytes:
    return simplejson.dumps(
        data, use_decimal=True, default=_json_default, ensure_ascii=False
    ).encode("utf-8")


def loads(content: bytes | str) -> Any:
    """A JSON document; ``ValueError`` when it is not one."""
    return simplejson.loads(content, use_decimal=True)


def _json_default(value: Any) -> str:
    if isinstance(value, date | uuid.UUID):
        return literal(value)
    raise TypeError(f"{type(value).__name__} values cannot be written to the remote: {value!r}")
