"""Converters between Django field values and the Web API's JSON values.

One small class per kind of field; ``converter_for`` picks by the field's class (its MRO, so a
subclass of ``CharField`` converts as text). A field with no converter cannot be mapped: the
system check says so before anything runs."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from dateutil.parser import isoparse
from django.db import models


class Converter:
    """``to_python``: remote JSON value -> field value; ``to_remote``: field value -> what the
    client writes (it renders ``Decimal``, dates, aware datetimes and UUIDs itself), also used
    as the literal in filters."""

    def to_python(self, field: models.Field, value: Any) -> Any:
        return value

    def to_remote(self, field: models.Field, value: Any) -> Any:
        return value

    def remote_range(self, field: models.Field) -> tuple[Any, Any] | None:
        """The lowest and highest value the remote type holds, when it is narrower than
        what a filter value may be: the translator knows that nothing lies beyond."""
        return None


class TextConverter(Converter):
    def to_python(self, field, value):
        if value is None and not field.null:
            return ""
        return value

    def to_remote(self, field, value):
        return None if value == "" and not field.null else value


INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


class IntegerConverter(Converter):
    """Dataverse's whole numbers are Int32, its big integers Int64."""

    def to_python(self, field, value):
        return None if value is None else int(value)

    def to_remote(self, field, value):
        return None if value is None else int(value)

    def remote_range(self, field):
        return INT64 if isinstance(field, models.BigIntegerField) else INT32


class DecimalConverter(Converter):
    def to_python(self, field, value):
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-field.decimal_places))

    def to_remote(self, field, value):
        # str() first: a float assigned to the field is sent as written, not as its binary value
        return None if value is None else Decimal(str(value))


class FloatConverter(Converter):
    def to_python(self, field, value):
        return None if value is None else float(value)

    def to_remote(self, field, value):
        return None if value is None else float(value)


class BooleanConverter(Converter):
    def to_python(self, field, value):
        return None if value is None else bool(value)


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 timestamp as the Web API writes it (``Z`` or an offset), by the standard
    library's parser; the rarer spellings it refuses (``24:00`` for midnight) by dateutil's."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return isoparse(text)


class DateTimeConverter(Converter):
    """Dataverse date-times are UTC instants. A naive value is read as Django reads it (in
    the current time zone, with Django's warning), so the remote gets what the local row
    holds."""

    def to_python(self, field, value):
        if value is None:
            return None
        moment = value if isinstance(value, dt.datetime) else parse_instant(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)

    def to_remote(self, field, value):
        return field.get_prep_value(value)


class DateConverter(Converter):
    def to_python(self, field, value):
        if value is None or isinstance(value, dt.date):
            return value
        return dt.date.fromisoformat(value[:10])

    def to_remote(self, field, value):
        # as Django stores it: an aware date-time is a day in the current time zone
        return field.to_python(value)


class TimeConverter(Converter):
    """Dataverse has no time-of-day type: a time is kept in a text column as ``HH:MM:SS``."""

    def to_python(self, field, value):
        return None if value in (None, "") else dt.time.fromisoformat(value)

    def to_remote(self, field, value):
        return None if value is None else value.isoformat()


class UUIDConverter(Converter):
    def to_python(self, field, value):
        return None if value is None else uuid.UUID(str(value))


class OptionSet(Converter):
    """A field whose values map to a Dataverse option set (choice column) by a dict, e.g.
    ``OptionSet({"retail": 1, "services": 2})``; remote values not in it read as None."""

    def __init__(self, options: dict[Any, int]):
        self.options = dict(options)
        self.values = {number: value for value, number in self.options.items()}

    def to_python(self, field, value):
        return None if value is None else self.values.get(value)

    def to_remote(self, field, value):
        if value is None:
            return None
        try:
            return self.options[value]
        except KeyError:
            raise ValueError(
                f"{field.name}: {value!r} is not one of the option set's values "
                f"({', '.join(map(repr, self.options))})"
            ) from None


CONVERTERS: dict[type[models.Field], Converter] = {
    models.CharField: TextConverter(),
    models.TextField: TextConverter(),
    models.IntegerField: IntegerConverter(),
    models.DecimalField: DecimalConverter(),
    models.FloatField: FloatConverter(),
    models.BooleanField: BooleanConverter(),
    models.DateTimeField: DateTimeConverter(),
    models.DateField: DateConverter(),
    models.TimeField: TimeConverter(),
    models.UUIDField: UUIDConverter(),
}


def converter_for(field: models.Field) -> Converter | None:
    """The converter for ``field``'s class or its nearest ancestor; None if there is none."""
    for cls in type(field).__mro__:
        if cls in CONVERTERS:
            return CONVERTERS[cls]
    return None
