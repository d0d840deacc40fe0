"""OData v4 ``$filter`` expressions as the Dataverse Web API v9.2 reads them.

A filter is a tree of small immutable nodes; each node renders itself, as a Django ``Lookup``
compiles itself. Build trees with ``Prop`` and the operators ``&``, ``|`` and ``~``::

    name = Prop("name")
    node = name.contains("acme") & (Prop("revenue").gt(Decimal("1E+6")) | name.is_null())
    render(node)  # "contains(name,'acme') and (revenue gt 1000000 or name eq null)"

``TRUE`` (no condition) and ``FALSE`` (an impossible one) are simplified away when nodes are
combined. They have no text: a caller that ends up with ``TRUE`` sends no ``$filter``, and
one that ends up with ``FALSE`` needs no request at all.

Values are never pasted into the text: they go through ``literal`` (or the quoting of query
function arguments), and property names must be plain identifiers, so no value or name can
change the shape of a filter.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from .errors import FilterTooLong

__all__ = [
    "FALSE",
    "TRUE",
    "And",
    "Compare",
    "Constant",
    "FilterTooLong",
    "IsNull",
    "Node",
    "Not",
    "Or",
    "Prop",
    "QueryFunction",
    "StringMatch",
    "and_",
    "literal",
    "not_",
    "or_",
    "render",
    "split_for_length",
]

CRM_NAMESPACE = "Microsoft.Dynamics.CRM"


# Literals ---------------------------------------------------------------------------------------


@functools.singledispatch
def literal(value: object) -> str:
    """``value`` as a Dataverse OData v4 literal.

    Dispatch is by type, most specific first, so ``bool`` is not taken for ``int`` nor
    ``datetime`` for ``date``."""
    raise TypeError(f"{type(value).__name__} values cannot be written in a $filter: {value!r}")


@literal.register(type(None))
def _literal_none(value: None) -> str:
    return "null"


@literal.register(str)
def _literal_str(value: str) -> str:
    return "'" + str.replace(value, "'", "''") + "'"


@literal.register(bool)
def _literal_bool(value: bool) -> str:
    return "true" if value else "false"


@literal.register(int)
def _literal_int(value: int) -> str:
    return int.__repr__(value)  # not str(): an IntEnum or other subclass may render otherwise


@literal.register(Decimal)
def _literal_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} has no OData literal: only finite numbers can be compared.")
    return format(value, "f")  # never an exponent: Decimal("1E+3") is 1000


@literal.register(float)
def _literal_float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"{value} has no OData literal: only finite numbers can be compared.")
    return float.__repr__(value)


@literal.register(uuid.UUID)
def _literal_uuid(value: uuid.UUID) -> str:
    return str(value)


@literal.register(datetime)
def _literal_datetime(value: datetime) -> str:
    if value.utcoffset() is None:
        raise ValueError(
            f"The naive datetime {value.isoformat()} has no time zone; Dataverse compares "
            "instants in UTC, so pass an aware datetime (the zone is never guessed)."
        )
    moment = value.astimezone(UTC).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds") + "Z"


@literal.register(date)
def _literal_date(value: date) -> str:
    return value.isoformat()


# Property references ----------------------------------------------------------------------------

PROPERTY_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*")
# Words the filter grammar gives a meaning of its own (case-insensitively, to be safe): a
# "property" named null or true would silently turn into a constant.
RESERVED = frozenset(
    {
        *("and", "or", "not", "eq", "ne", "gt", "ge", "lt", "le", "has", "in"),
        *("add", "sub", "mul", "div", "mod", "any", "all", "it", "root", "this"),
        *("true", "false", "null", "inf", "nan"),
    }
)


@dataclass(frozen=True)
class Prop:
    """A property of the filtered entity, or a path through single-valued navigation
    properties (``parentaccountid/name``)."""

    name: str

    def __post_init__(self) -> None:
        if (
            not isinstance(self.name, str)
            or not PROPERTY_PATH.fullmatch(self.name)
            or any(segment.lower() in RESERVED for segment in self.name.split("/"))
        ):
            raise ValueError(f"{self.name!r} is not a property name or navigation path.")

    def __str__(self) -> str:
        return self.name

    # comparisons
    def eq(self, value: Any) -> Node:
        return IsNull(self) if value is None else Compare(self, "eq", value)

    def ne(self, value: Any) -> Node:
        return not_(IsNull(self)) if value is None else Compare(self, "ne", value)

    def gt(self, value: Any) -> Node:
        return Compare(self, "gt", value)

    def ge(self, value: Any) -> Node:
        return Compare(self, "ge", value)

    def lt(self, value: Any) -> Node:
        return Compare(self, "lt", value)

    def le(self, value: Any) -> Node:
        return Compare(self, "le", value)

    def is_null(self, value: bool = True) -> Node:
        return IsNull(self) if value else not_(IsNull(self))

    # strings
    def contains(self, text: str, *, pattern: bool = False) -> Node:
        return StringMatch(self, "contains", text, pattern=pattern)

    def startswith(self, text: str, *, pattern: bool = False) -> Node:
        return StringMatch(self, "startswith", text, pattern=pattern)

    def endswith(self, text: str, *, pattern: bool = False) -> Node:
        return StringMatch(self, "endswith", text, pattern=pattern)

    # query functions
    def isin(self, values: Iterable[Any]) -> Node:
        """``In``; no values at all is the impossible condition ``FALSE``."""
        values = _sequence(values)
        return QueryFunction("In", self, values) if values else FALSE

    def not_in(self, values: Iterable[Any]) -> Node:
        """``NotIn``; excluding no values at all is no condition: ``TRUE``."""
        values = _sequence(values)
        return QueryFunction("NotIn", self, values) if values else TRUE

    def between(self, low: Any, high: Any) -> Node:
        return QueryFunction("Between", self, (low, high))

    def not_between(self, low: Any, high: Any) -> Node:
        return QueryFunction("NotBetween", self, (low, high))

    def on(self, day: date | str) -> Node:
        return QueryFunction("On", self, (day,))

    def on_or_after(self, day: date | str) -> Node:
        return QueryFunction("OnOrAfter", self, (day,))

    def on_or_before(self, day: date | str) -> Node:
        return QueryFunction("OnOrBefore", self, (day,))


def _prop(value: Prop | str) -> Prop:
    if isinstance(value, Prop):
        return value
    if isinstance(value, str):
        return Prop(value)
    raise TypeError(f"Expected a Prop or a property name, got {value!r}.")


def _sequence(values: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(values, str | bytes):
        raise TypeError(f"Expected a collection of values, got the string {values!r}.")
    return tuple(values)


# Nodes ------------------------------------------------------------------------------------------


class Node:
    """A boolean condition. Subclasses are frozen dataclasses that render themselves."""

    flips_polarity: ClassVar[bool] = False

    def render(self) -> str:
        raise NotImplementedError

    def negate(self) -> Node:
        return Not(self)

    def operands(self) -> tuple[Node, ...]:
        return ()

    def with_operands(self, operands: Sequence[Node]) -> Node:
        return self

    def __str__(self) -> str:
        return self.render()

    def __and__(self, other: object) -> Node:
        return and_(self, other) if isinstance(other, Node) else NotImplemented

    def __or__(self, other: object) -> Node:
        return or_(self, other) if isinstance(other, Node) else NotImplemented

    def __invert__(self) -> Node:
        return not_(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "A filter node has no truth value: combine nodes with &, | and ~ (not and, or, "
            "not), and test for the constants with `is TRUE` / `is FALSE`."
        )


@dataclass(frozen=True)
class Constant(Node):
    """``TRUE`` or ``FALSE``; use those two instances rather than making new ones."""

    value: bool

    def render(self) -> str:
        if self.value:
            raise ValueError(
                "TRUE has no $filter text: a condition that is always true means "
                "sending no $filter at all."
            )
        raise ValueError(
            "FALSE has no $filter text: a condition that is never true means no "
            "request is needed (the result is empty)."
        )

    def negate(self) -> Node:
        return FALSE if self.value else TRUE


TRUE = Constant(True)
FALSE = Constant(False)


@dataclass(frozen=True)
class Compare(Node):
    """``prop op value``; ``value`` is a Python value or another ``Prop`` (two columns)."""

    prop: Prop
    op: str
    value: Any

    OPERATORS: ClassVar[frozenset[str]] = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "prop", _prop(self.prop))
        if self.op not in self.OPERATORS:
            raise ValueError(f"Unknown comparison operator {self.op!r}.")
        if self.value is None:
            raise ValueError("Compare with None: use IsNull (Prop.eq(None) or Prop.is_null()).")
        self._right()  # a value with no literal fails here, not when the filter is sent

    def _right(self) -> str:
        return self.value.name if isinstance(self.value, Prop) else literal(self.value)

    def render(self) -> str:
        return f"{self.prop} {self.op} {self._right()}"


@dataclass(frozen=True)
class IsNull(Node):
    """``prop eq null``, or ``prop ne null`` once negated."""

    prop: Prop
    negated: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "prop", _prop(self.prop))

    def render(self) -> str:
        return f"{self.prop} {'ne' if self.negated else 'eq'} null"

    def negate(self) -> Node:
        return IsNull(self.prop, not self.negated)


# contains/startswith/endswith arguments are T-SQL LIKE patterns in Dataverse.
LIKE_ESCAPES = str.maketrans({"%": "[%]", "_": "[_]", "[": "[[]"})


@dataclass(frozen=True)
class StringMatch(Node):
    """``contains(prop,'text')`` and its kin. Dataverse reads the text as a ``LIKE`` pattern,
    so its wildcards ``%``, ``_`` and ``[`` are escaped unless ``pattern`` is true."""

    prop: Prop
    kind: str
    text: str
    pattern: bool = False

    KINDS: ClassVar[frozenset[str]] = frozenset({"contains", "startswith", "endswith"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "prop", _prop(self.prop))
        if self.kind not in self.KINDS:
            raise ValueError(f"Unknown string function {self.kind!r}.")
        if not isinstance(self.text, str):
            raise TypeError(f"{self.kind} takes a string, got {self.text!r}.")

    def render(self) -> str:
        text = self.text if self.pattern else self.text.translate(LIKE_ESCAPES)
        return f"{self.kind}({self.prop},{literal(text)})"


@dataclass(frozen=True)
class QueryFunction(Node):
    """A Dataverse query function: ``Microsoft.Dynamics.CRM.In(PropertyName='name',
    PropertyValues=['a','b'])``. Its arguments are always strings: a number, GUID, date or
    datetime is written as its literal text inside quotes. Functions take a property of the
    filtered entity only, not a navigation path."""

    name: str
    prop: Prop
    values: tuple[Any, ...]

    ARITY: ClassVar[dict[str, int | None]] = {
        "In": None,
        "NotIn": None,
        "Between": 2,
        "NotBetween": 2,
        "On": 1,
        "OnOrAfter": 1,
        "OnOrBefore": 1,
    }

    def __post_init__(self) -> None:
        prop = _prop(self.prop)
        object.__setattr__(self, "prop", prop)
        object.__setattr__(self, "values", _sequence(self.values))
        if self.name not in self.ARITY:
            raise ValueError(f"Unknown query function {self.name!r}.")
        if "/" in prop.name:
            raise ValueError(
                f"{CRM_NAMESPACE}.{self.name} takes a property of the filtered entity, not the "
                f"path {prop.name!r}."
            )
        arity = self.ARITY[self.name]
        if arity is None and not self.values:
            raise ValueError(f"{CRM_NAMESPACE}.{self.name} needs at least one value.")
        if arity is not None and len(self.values) != arity:
            raise ValueError(f"{CRM_NAMESPACE}.{self.name} takes exactly {arity} value(s).")
        if arity == 1 and isinstance(self.values[0], datetime):
            raise TypeError(
                f"{CRM_NAMESPACE}.{self.name} takes a date; which day a datetime falls on "
                "depends on a time zone, which is never guessed."
            )
        self.quoted_values()  # a value with no literal fails here

    def quoted_values(self) -> list[str]:
        return [_quote_argument(value) for value in self.values]

    def render(self) -> str:
        arguments = ",".join(self.quoted_values())
        if self.ARITY[self.name] == 1:
            values = f"PropertyValue={arguments}"
        else:
            values = f"PropertyValues=[{arguments}]"
        return f"{CRM_NAMESPACE}.{self.name}(PropertyName='{self.prop}',{values})"


def _quote_argument(value: Any) -> str:
    if value is None:
        raise ValueError("A query function value cannot be None; use IsNull for null.")
    if isinstance(value, Prop):
        raise TypeError("A query function compares with values, not with another property.")
    text = value if isinstance(value, str) else literal(value)
    return "'" + str.replace(text, "'", "''") + "'"


@dataclass(frozen=True)
class Not(Node):
    child: Node

    flips_polarity: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.child, Node):
            raise TypeError(f"not takes a filter node, got {self.child!r}.")

    def render(self) -> str:
        return f"not ({self.child.render()})"

    def negate(self) -> Node:
        return self.child

    def operands(self) -> tuple[Node, ...]:
        return (self.child,)

    def with_operands(self, operands: Sequence[Node]) -> Node:
        (child,) = operands
        return Not(child)


@dataclass(frozen=True, init=False)
class Junction(Node):
    """``And`` / ``Or`` of two or more conditions. The constructors take the children as
    given; ``and_`` / ``or_`` (and ``&`` / ``|``) also simplify."""

    children: tuple[Node, ...]

    keyword: ClassVar[str] = ""
    identity: ClassVar[Constant]  # dropped: x and TRUE = x
    absorbing: ClassVar[Constant]  # wins: x and FALSE = FALSE

    def __init__(self, *children: Node) -> None:
        if not children:
            raise ValueError(f"{type(self).__name__} needs at least one condition.")
        for child in children:
            if not isinstance(child, Node):
                raise TypeError(f"{self.keyword} takes filter nodes, got {child!r}.")
        object.__setattr__(self, "children", children)

    @classmethod
    def combine(cls, nodes: Iterable[Node]) -> Node:
        flat: list[Node] = []
        for node in nodes:
            if not isinstance(node, Node):
                raise TypeError(f"{cls.keyword} takes filter nodes, got {node!r}.")
            if node == cls.absorbing:
                return cls.absorbing
            if node == cls.identity:
                continue
            flat.extend(node.children if isinstance(node, cls) else (node,))
        # x and x is x: drop repeated operands (compared by their text, since dataclass
        # equality would take `eq true` for `eq 1`)
        flat = list({(type(n), n.render()): n for n in flat}.values())
        if not flat:
            return cls.identity
        return flat[0] if len(flat) == 1 else cls(*flat)

    def render(self) -> str:
        return f" {self.keyword} ".join(self._operand(child) for child in self.children)

    def _operand(self, child: Node) -> str:
        text = child.render()
        # Only and/or mixed need parentheses; they are written even where precedence
        # (and binds tighter than or) would make them optional, for the reader's sake.
        grouped = isinstance(child, Junction) and type(child) is not type(self)
        return f"({text})" if grouped else text

    def operands(self) -> tuple[Node, ...]:
        return self.children

    def with_operands(self, operands: Sequence[Node]) -> Node:
        return type(self)(*operands)


class And(Junction):
    keyword = "and"
    identity = TRUE
    absorbing = FALSE


class Or(Junction):
    keyword = "or"
    identity = FALSE
    absorbing = TRUE


def and_(*nodes: Node) -> Node:
    return And.combine(nodes)


def or_(*nodes: Node) -> Node:
    return Or.combine(nodes)


def not_(node: Node) -> Node:
    if not isinstance(node, Node):
        raise TypeError(f"not takes a filter node, got {node!r}.")
    return node.negate()


def render(node: Node) -> str:
    """The ``$filter`` text of ``node``; ``TRUE`` and ``FALSE`` raise ``ValueError``."""
    if not isinstance(node, Node):
        raise TypeError(f"Expected a filter node, got {node!r}.")
    return node.render()


# Splitting for the URL limit --------------------------------------------------------------------


def split_for_length(
    node: Node, max_length: int, *, measure: Callable[[str], int] = len
) -> list[Node]:
    """Filters no longer than ``max_length`` whose results, united, are the results of ``node``.

    Why a union is exact: take an ``In(p, V)`` that sits under an even number of ``not`` (or a
    ``NotIn`` under an odd number, which is the same thing). Dataverse evaluates filters in
    SQL's three-valued logic; ``and``/``or`` are monotone in their operands there and ``not``
    reverses the order, so at positive polarity the whole filter ``F`` is monotone in the truth
    of that ``In``, which is monotone in ``V``. Hence, for ``V`` split into ``V1 .. Vn``, a
    record satisfies ``F(V)`` if and only if it satisfies some ``F(Vi)``: its ``p`` is in ``V``
    exactly when it is in some ``Vi``, and then ``In`` has the same truth in ``F(Vi)`` as in
    ``F(V)``; and ``F(Vi)`` never selects more than ``F(V)``. Under an odd number of ``not``
    the filter is antitone in ``V`` and a union would return records that ``F(V)`` excludes,
    so such a list is never split. Callers run every filter and dedupe the union by key.

    The largest such list (by measured length) is cut into the fewest runs of consecutive
    values such that every filter fits. ``measure`` (``len`` by default) may instead count the
    percent-encoded length; it must be additive over concatenation, as both are.

    Raises ``FilterTooLong`` when there is no list to split or when the filter does not fit
    even with one value in that list.
    """
    if measure(render(node)) <= max_length:
        return [node]
    sites = list(_splittable(node))
    if not sites:
        raise FilterTooLong(
            f"The $filter is {measure(render(node))} characters long, over the limit of "
            f"{max_length}, and has no {CRM_NAMESPACE}.In list that can be split into several "
            "requests (one that is not negated)."
        )

    def size(site: tuple[tuple[int, ...], QueryFunction]) -> int:
        return sum(measure(text) for text in site[1].quoted_values())

    path, target = max(sites, key=size)
    costs = [measure(text) for text in target.quoted_values()]
    one = _replace_at(node, path, dataclasses.replace(target, values=target.values[:1]))
    base = measure(render(one)) - costs[0]
    comma = measure(",")
    if base + max(costs) > max_length:
        raise FilterTooLong(
            f"The $filter does not fit in {max_length} characters even with a single value in "
            f"its longest {target.name} list (on {target.prop}): it needs "
            f"{base + max(costs)}."
        )

    chunks: list[list[Any]] = []
    used = max_length + 1  # start a new chunk with the first value
    for value, cost in zip(target.values, costs, strict=True):
        if used + comma + cost > max_length:
            chunks.append([])
            used = base - comma
        chunks[-1].append(value)
        used += comma + cost

    nodes = [
        _replace_at(node, path, dataclasses.replace(target, values=tuple(chunk)))
        for chunk in chunks
    ]
    for part in nodes:
        if measure(render(part)) > max_length:
            raise FilterTooLong(
                "A split $filter is still too long: is the measure additive over concatenation?"
            )
    return nodes


def _splittable(
    node: Node, path: tuple[int, ...] = (), negations: int = 0
) -> Iterator[tuple[tuple[int, ...], QueryFunction]]:
    """Every ``In`` at positive polarity (and ``NotIn`` at negative), with its path."""
    positive = negations % 2 == 0
    if isinstance(node, QueryFunction) and node.name == ("In" if positive else "NotIn"):
        yield path, node
    negations += node.flips_polarity
    for index, child in enumerate(node.operands()):
        yield from _splittable(child, (*path, index), negations)


def _replace_at(node: Node, path: tuple[int, ...], new: Node) -> Node:
    """``node`` with the descendant at ``path`` replaced: only that occurrence, not any equal
    node elsewhere (which may sit at the other polarity)."""
    if not path:
        return new
    operands = list(node.operands())
    operands[path[0]] = _replace_at(operands[path[0]], path[1:], new)
    return node.with_operands(operands)
