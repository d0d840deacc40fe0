"""The Edm types the simulator stores: how each is validated on write, stored in SQLite,
written back as JSON and compared with a ``$filter`` literal.

Each type is a small class; ``TYPES`` maps the schema's type names to them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
import uuid
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from odata_query import ast

from .errors import OPTION_OUT_OF_RANGE, VALIDATION, DataverseError, bad_query, invalid_body

if TYPE_CHECKING:
    from .schema import Property

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
NAIVE_EPOCH = EPOCH.replace(tzinfo=None)
#: "All date and time columns in Dataverse support values as early as 1/1/1753 12:00 AM."
EARLIEST = dt.date(1753, 1, 1)


class EdmType:
    edm: str = ""
    column: str = ""
    literals: tuple[type, ...] = ()

    def from_json(self, prop: Property, value: Any) -> Any:
        """Validate a value written in a request body; return what is stored."""
        raise NotImplementedError

    def to_json(self, prop: Property, stored: Any) -> Any:
        return stored

    @property
    def writes_stored_value(self) -> bool:
        """Whether ``to_json`` gives the stored value back as it is: nothing to call per row."""
        return type(self).to_json is EdmType.to_json

    def from_literal(self, prop: Property, literal: ast._Literal) -> Any:
        """Convert a ``$filter`` literal compared with ``prop`` into a stored value."""
        return literal.py_val

    def from_text(self, prop: Property, text: str) -> Any:
        """Convert a query-function argument (always written as a string) into a stored value."""
        return self.from_json(prop, text)

    def check_literal(self, prop: Property, literal: ast._Literal, operator: str) -> None:
        if not isinstance(literal, self.literals):
            raise bad_query(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{self.edm}' and '{literal_edm(literal)}' for operator kind '{operator}'."
            )


def literal_edm(literal: ast._Node) -> str:
    return {
        ast.String: "Edm.String",
        ast.Integer: "Edm.Int32",
        ast.Float: "Edm.Double",
        ast.Boolean: "Edm.Boolean",
        ast.Date: "Edm.Date",
        ast.DateTime: "Edm.DateTimeOffset",
        ast.GUID: "Edm.Guid",
        ast.Time: "Edm.TimeOfDay",
        ast.Duration: "Edm.Duration",
    }.get(type(literal), type(literal).__name__)


def type_error(prop: Property, value: Any) -> DataverseError:
    return invalid_body(
        f"Cannot convert the literal '{value}' to the expected type '{prop.type.edm}' "
        f"of property '{prop.name}'."
    )


class StringType(EdmType):
    edm = "Edm.String"
    column = "TEXT COLLATE DATAVERSE"
    literals = (ast.String,)

    def from_json(self, prop, value):
        if not isinstance(value, str):
            raise type_error(prop, value)
        if "\x00" in value:
            raise invalid_body(f"The value of '{prop.name}' contains a NUL character.")
        # the length in UTF-16 code units, as SQL Server's nvarchar(n) and .NET count it: a
        # character beyond U+FFFF takes two
        if prop.max_length is not None and len(value.encode("utf-16-le")) // 2 > prop.max_length:
            raise DataverseError(
                400,
                VALIDATION,
                f"A validation error occurred. The length of the '{prop.name}' attribute of the "
                f"'{prop.entity_type}' entity exceeded the maximum allowed length of "
                f"'{prop.max_length}'.",
            )
        return value

    def from_text(self, prop, text):
        # A value to compare with is not a value to store: no length limit applies.
        return text


class GuidType(EdmType):
    edm = "Edm.Guid"
    column = "TEXT"
    literals = (ast.GUID,)

    def from_json(self, prop, value):
        return parse_guid(value, lambda: type_error(prop, value))

    def from_literal(self, prop, literal):
        return str(literal.py_val)


def parse_guid(value: Any, error) -> str:
    if not isinstance(value, str):
        raise error()
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise error() from None


class IntegerType(EdmType):
    column = "INTEGER"
    literals = (ast.Integer, ast.Float)

    def __init__(self, edm: str, bits: int):
        self.edm = edm
        self.low, self.high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def from_json(self, prop, value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise type_error(prop, value)
        if not self.low <= value <= self.high:
            raise DataverseError(
                400, VALIDATION, f"The value {value} of '{prop.name}' is outside the valid range."
            )
        return value

    def from_literal(self, prop, literal):
        value = literal.py_val
        if isinstance(value, int) and not self.low <= value <= self.high:
            raise bad_query(
                f"The value {value} is outside the range of {self.edm}, the type of '{prop.name}'."
            )
        return value

    def from_text(self, prop, text):
        try:
            return self.from_json(prop, int(text))
        except ValueError:
            raise type_error(prop, text) from None


class PicklistType(IntegerType):
    """An option set: an Int32 restricted to the options the schema declares."""

    def __init__(self):
        super().__init__("Edm.Int32", 32)

    def from_json(self, prop, value):
        value = super().from_json(prop, value)
        if str(value) not in prop.options:
            raise DataverseError(
                400,
                OPTION_OUT_OF_RANGE,
                f"A validation error occurred. The value {value} of '{prop.name}' on record of "
                f"type '{prop.entity_type}' is outside the valid range.",
            )
        return value


class DecimalType(EdmType):
    """Stored as canonical text under the DECIMAL collation, so comparisons stay exact."""

    edm = "Edm.Decimal"
    column = "TEXT COLLATE DECIMAL"
    literals = (ast.Integer, ast.Float)

    def from_text(self, prop, text):
        try:
            return self.from_json(prop, Decimal(text))
        except InvalidOperation:
            raise type_error(prop, text) from None

    def from_json(self, prop, value):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise type_error(prop, value)
        number = Decimal(str(value))
        if not number.is_finite():
            raise type_error(prop, value)
        number = number.quantize(Decimal(1).scaleb(-prop.scale))
        if number.adjusted() >= prop.precision - prop.scale:
            raise DataverseError(
                400, VALIDATION, f"The value {value} of '{prop.name}' is outside the valid range."
            )
        return str(number)

    def to_json(self, prop, stored):
        return None if stored is None else Decimal(stored)

    def from_literal(self, prop, literal):
        return str(Decimal(literal.val))


class DoubleType(EdmType):
    edm = "Edm.Double"
    column = "REAL"
    literals = (ast.Integer, ast.Float)

    def from_json(self, prop, value):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise type_error(prop, value)
        return float(value)

    def from_literal(self, prop, literal):
        return float(literal.py_val)

    def from_text(self, prop, text):
        try:
            return float(text)
        except ValueError:
            raise type_error(prop, text) from None


class BooleanType(EdmType):
    edm = "Edm.Boolean"
    column = "INTEGER"
    literals = (ast.Boolean,)

    def from_json(self, prop, value):
        if not isinstance(value, bool):
            raise type_error(prop, value)
        return int(value)

    def to_json(self, prop, stored):
        return None if stored is None else bool(stored)

    def from_literal(self, prop, literal):
        return int(literal.py_val)

    def from_text(self, prop, text):
        if text.lower() not in ("true", "false"):
            raise type_error(prop, text)
        return int(text.lower() == "true")


class DateType(EdmType):
    """A date-only column (``DateOnly`` behaviour): ISO text, ordered as text."""

    edm = "Edm.Date"
    column = "TEXT"
    literals = (ast.Date,)

    def from_json(self, prop, value):
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise type_error(prop, value)
        try:
            day = dt.date.fromisoformat(value)
        except ValueError:
            raise type_error(prop, value) from None
        if day < EARLIEST:
            raise too_early(prop, value)
        return day.isoformat()

    def from_literal(self, prop, literal):
        return literal.py_val.isoformat()


class DateTimeOffsetType(EdmType):
    """Stored as whole seconds since the epoch (UTC); Dataverse keeps no finer precision."""

    edm = "Edm.DateTimeOffset"
    column = "INTEGER"
    literals = (ast.DateTime, ast.Date)

    def from_json(self, prop, value):
        seconds = math.floor(self._seconds(prop, value))  # whole seconds: the fraction dropped
        if seconds < EARLIEST_SECONDS:
            raise too_early(prop, value)
        return seconds

    def from_text(self, prop, text):
        # A bound to compare with keeps its fraction: 12:00:00.5 is after 12:00:00.
        seconds = self._seconds(prop, text)
        return int(seconds) if seconds.is_integer() else seconds

    @staticmethod
    def _seconds(prop, value) -> float:
        if not isinstance(value, str):
            raise type_error(prop, value)
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise type_error(prop, value) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return (moment - EPOCH).total_seconds()

    def to_json(self, prop, stored):
        # isoformat() always writes four digits of year (strftime's %Y does not before 1000)
        if stored is None:
            return None
        return (NAIVE_EPOCH + dt.timedelta(seconds=stored)).isoformat() + "Z"

    def from_literal(self, prop, literal):
        if isinstance(literal, ast.Date):
            moment = dt.datetime.combine(literal.py_val, dt.time(), tzinfo=dt.UTC)
        else:
            moment = literal.py_val
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
        seconds = (moment - EPOCH).total_seconds()
        return int(seconds) if seconds.is_integer() else seconds


EARLIEST_SECONDS = (dt.datetime.combine(EARLIEST, dt.time(), dt.UTC) - EPOCH).total_seconds()


def too_early(prop, value) -> DataverseError:
    return DataverseError(
        400,
        VALIDATION,
        f"The value {value} of '{prop.name}' is outside the supported range: dates and times "
        f"start at {EARLIEST.isoformat()}.",
    )


def now_seconds() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp())


TYPES: dict[str, EdmType] = {
    "String": StringType(),
    "Memo": StringType(),
    "Guid": GuidType(),
    "Int32": IntegerType("Edm.Int32", 32),
    "Int64": IntegerType("Edm.Int64", 64),
    "Picklist": PicklistType(),
    "Decimal": DecimalType(),
    "Money": DecimalType(),
    "Double": DoubleType(),
    "Boolean": BooleanType(),
    "Date": DateType(),
    "DateTimeOffset": DateTimeOffsetType(),
    "Lookup": GuidType(),
}


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case- and accent-insensitive form of ``text``, as Dataverse's default collation
    (Latin1_General_CI_AI) compares strings."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def collate_text(left: str, right: str) -> int:
    a, b = fold(left), fold(right)
    return (a > b) - (a < b)


def collate_decimal(left: str, right: str) -> int:
    a, b = Decimal(left), Decimal(right)
    return (a > b) - (a < b)


@lru_cache(maxsize=4096)
def like_regex(pattern: str) -> re.Pattern:
    """Compile a T-SQL ``LIKE`` pattern (``%``, ``_``, ``[set]``, ``[^set]``) as Dataverse
    evaluates ``contains``/``startswith``/``endswith`` arguments, to match a folded value.

    The wildcards are read in the pattern as written, and only then are its literal characters
    folded: a full-width bracket (U+FF3B) compares equal to ``[`` but never opens a set."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            negate = body.startswith("^") and len(body) > 1
            body = body[1:] if negate else body
            members = [_set_member(part) for part in re.findall(r".-.|.", body, re.S)]
            members = [member for member in members if member]
            if not members:
                out.append("." if negate else "(?!)")
            else:
                group = "(?:" + "|".join(members) + ")"
                out.append(f"(?!{group})." if negate else group)
            i = end
        else:
            out.append(re.escape(fold(char)))
        i += 1
    return re.compile("".join(out), re.S)


def _set_member(part: str) -> str | None:
    """A character or a range of a ``[set]``, folded, as a regular expression; None when it
    matches nothing (a reversed range such as ``z-a``, as in SQL Server)."""
    if len(part) == 1:
        folded = fold(part)
        return re.escape(folded) if folded else None
    low, high = fold(part[0]), fold(part[2])
    if len(low) != 1 or len(high) != 1 or low > high:
        return None
    return f"[{re.escape(low)}-{re.escape(high)}]"


def dataverse_like(value: str | None, pattern: str | None) -> int | None:
    if value is None or pattern is None:
        return None
    return int(like_regex(pattern).fullmatch(fold(value)) is not None)
