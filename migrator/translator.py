"""The query translator: a queryset's resolved ``query.where`` tree (what ``filter``,
``exclude``, ``Q``, chaining and related lookups all produce) compiled into an OData filter
that selects a superset of the true matches.

As Django's compiler walks its ``WhereNode`` and asks each lookup for its SQL, this walks the
same tree and asks a registry of small renderers, one per lookup, for an ``odata`` node. What
Dataverse cannot express is relaxed by polarity: under an even number of negations it becomes
TRUE, under an odd number FALSE, so the remote read still returns every true match and the
local query decides. Two more rules keep negations sound:

- A comparison under an odd number of negations also requires its property to be non-null:
  Dataverse (SQL) drops a row whose ``not (x eq 5)`` is unknown, where Django's ``exclude``
  keeps it; ``not (x eq 5 and x ne null)`` keeps it on both sides.
- Dataverse compares strings case- and accent-insensitively: a superset of Django's match, so
  fine as it is, but a subset once negated; negated text matches are relaxed. Text order
  comparisons (``gt``...) follow another collation than the local database's and are relaxed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import lookups as django_lookups
from django.db.models.expressions import Col
from django.db.models.functions import TruncDate
from django.db.models.sql.datastructures import Join
from django.db.models.sql.where import NothingNode, WhereNode
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import CDMSNotSupported

from .mapping import FieldMap, Mapping

COMPARISONS = {"exact": "eq", "iexact": "eq", "gt": "gt", "gte": "ge", "lt": "lt", "lte": "le"}
MAX_NAVIGATED_IN = 50
STRING_MATCHES = {
    "contains": "contains",
    "icontains": "contains",
    "startswith": "startswith",
    "istartswith": "startswith",
    "endswith": "endswith",
    "iendswith": "endswith",
}


@dataclass(frozen=True)
class RemotePlan:
    """The remote read for a queryset. ``filter`` is ``odata.TRUE`` for no ``$filter`` and
    ``odata.FALSE`` when nothing can match (no request at all). ``keys`` is set when the filter
    is exactly a set of remote keys: a key the remote does not return was deleted."""

    filter: odata.Node
    orderby: list[str] = field(default_factory=list)
    top: int | None = None
    relaxed: list[str] = field(default_factory=list)
    keys: frozenset[str] | None = None


class Unsupported(Exception):
    """Raised by a renderer for what it cannot express; the walker relaxes it."""


@dataclass
class Operand:
    """The left-hand side of a lookup, resolved: the remote property path and how values
    compared with it become remote values. ``kind`` is ``field`` (a mapped field), ``key`` (the
    remote key, ``cdms_pk``) or ``local_pk`` (the local primary key: ids become remote keys)."""

    path: str
    field: models.Field
    kind: str
    mapping: FieldMap | None = None
    navigated: bool = False

    @property
    def is_text(self) -> bool:
        return self.kind == "field" and isinstance(self.field, models.CharField | models.TextField)

    @property
    def is_plain(self) -> bool:
        """A mapped value column: not a key, not a lookup."""
        return self.kind == "field" and not self.mapping.is_lookup

    def remote_values(self, values: list[Any]) -> list[Any]:
        """Values as the remote compares them; rows that exist only locally drop out."""
        if self.kind == "key":
            return [_uuid(v) for v in values if v is not None]
        if self.kind == "local_pk":
            return remote_keys(self.field.model, values)
        if self.mapping.is_lookup:
            return remote_keys(self.mapping.target, values)
        return [self.mapping.to_remote(v) for v in values]


def remote_keys(model: type[models.Model], values: list[Any]) -> list[Any]:
    """Remote keys of the local rows ``values`` (ids or instances) name, in one query."""
    ids = [v.pk if isinstance(v, models.Model) else v for v in values if v is not None]
    if not ids:
        return []
    keys = model._base_manager.filter(pk__in=ids).values_list("cdms_pk", flat=True)
    return [k for k in keys if k is not None]


class Translator:
    def __init__(self, queryset: models.QuerySet):
        self.query = queryset.query
        self.model = queryset.model
        self.relaxed: list[str] = []

    def translate(self) -> RemotePlan:
        where = self.query.where
        node = self.walk(where, negations=0) if where.children else odata.TRUE
        orderby, top = self.ordering()
        return RemotePlan(node, orderby, top, self.relaxed, self.key_set(node))

    # the walk ---------------------------------------------------------------------------------
    def walk(self, node: Any, negations: int) -> odata.Node:
        if isinstance(node, WhereNode):
            depth = negations + node.negated
            if node.connector not in ("AND", "OR"):
                return self.relax(f"a {node.connector} condition", depth)
            children = [self.walk(child, depth) for child in node.children]
            combined = odata.and_(*children) if node.connector == "AND" else odata.or_(*children)
            return odata.not_(combined) if node.negated else combined
        if isinstance(node, NothingNode):
            return odata.FALSE
        if isinstance(node, django_lookups.Lookup):
            try:
                return self.lookup(node, negations % 2 == 1)
            except Unsupported as reason:
                return self.relax(str(reason), negations)
        return self.relax(f"a {type(node).__name__} condition", negations)

    def relax(self, what: str, negations: int) -> odata.Node:
        self.relaxed.append(what)
        return odata.FALSE if negations % 2 else odata.TRUE

    def lookup(self, lookup: django_lookups.Lookup, negated: bool) -> odata.Node:
        if isinstance(lookup.lhs, TruncDate):
            renderer = date_of_datetime
        else:
            renderer = RENDERERS.get(type(lookup)) or RENDERERS.get(lookup.lookup_name)
        if renderer is None:
            raise Unsupported(f"the lookup '{lookup.lookup_name}'")
        node = renderer(self, lookup, negated)
        if negated and not isinstance(node, odata.Constant | odata.IsNull):
            node = node & odata.Prop(self.operand(_base(lookup.lhs)).path).ne(None)
        return node

    def operand(self, expression: Any) -> Operand:
        """The remote property a column is, following forward foreign keys as navigation."""
        col = _column(expression)
        navigation, alias = [], col.alias
        while isinstance(join := self.query.alias_map[alias], Join):
            fk = join.join_field
            if not isinstance(fk, models.ForeignKey):
                raise Unsupported("a condition across a one-to-many relation")
            fm = _mapping(fk.model).get(fk.name)
            if fm is None:
                raise Unsupported(f"a condition across {fk.model.__name__}.{fk.name}")
            navigation.append(fm.navigation)
            alias = join.parent_alias
        navigation.reverse()
        target = col.target
        mapping = _mapping(target.model)
        if target.name == "cdms_pk" or target.primary_key:
            kind = "key" if target.name == "cdms_pk" else "local_pk"
            path = "/".join([*navigation, mapping.key])
            return Operand(path, target, kind, None, bool(navigation))
        fm = mapping.get(target.name)
        if fm is None:
            raise Unsupported(f"the local-only field {target.model.__name__}.{target.name}")
        return Operand("/".join([*navigation, fm.remote]), target, "field", fm, bool(navigation))

    # ordering and slicing -----------------------------------------------------------------------
    def ordering(self) -> tuple[list[str], int | None]:
        """``$orderby`` for the mapped ordering fields, and ``$top`` for a slice when the
        remote can order exactly as the local query does."""
        query = self.query
        names = list(query.order_by) or (
            list(query.get_meta().ordering) if query.default_ordering else []
        )
        if "?" in names:
            raise CDMSNotSupported(
                "order_by('?') cannot be read from the remote (Dataverse has no random order); "
                "use skip_cdms() to order local rows at random."
            )
        orderby, complete = [], True
        for name in names:
            fm = _mapping(self.model).get(name.lstrip("-")) if isinstance(name, str) else None
            if fm is None:
                complete = False
                continue
            orderby.append(f"{fm.remote} desc" if name.startswith("-") else fm.remote)
        plain = not (query.distinct or query.group_by or query.combinator)
        top = query.high_mark if query.high_mark is not None and complete and plain else None
        return orderby, top

    def key_set(self, node: odata.Node) -> frozenset[str] | None:
        """The keys, when the whole filter is ``key eq k`` or ``key In (...)``."""
        key = _mapping(self.model).key
        if self.relaxed:
            return None
        if isinstance(node, odata.Compare) and node.op == "eq" and node.prop.name == key:
            return frozenset({str(node.value)})
        if isinstance(node, odata.QueryFunction) and node.name == "In" and node.prop.name == key:
            return frozenset(str(v) for v in node.values)
        return None


def _mapping(model: type[models.Model]) -> Mapping:
    mapping = getattr(model, "cdms", None)
    if not isinstance(mapping, Mapping):
        raise Unsupported(f"a condition on {model.__name__}, which is not synced")
    return mapping


def _column(expression: Any) -> Col:
    if isinstance(expression, Col):
        return expression
    raise Unsupported(f"a condition on {type(expression).__name__}")


def _base(expression: Any) -> Any:
    """The column under transforms (``created__year`` -> ``created``)."""
    while not isinstance(expression, Col) and hasattr(expression, "lhs"):
        expression = expression.lhs
    return expression


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# renderers: one small function per lookup ------------------------------------------------------
Renderer = Callable[[Translator, django_lookups.Lookup, bool], odata.Node]
RENDERERS: dict[Any, Renderer] = {}


def renders(*keys: Any) -> Callable[[Renderer], Renderer]:
    def register(function: Renderer) -> Renderer:
        for key in keys:
            RENDERERS[key] = function
        return function

    return register


@renders(*COMPARISONS)
def compare(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    op = COMPARISONS[lookup.lookup_name]
    if left.is_text and (negated or op != "eq"):
        raise Unsupported(f"a negated or ordered text comparison on {left.field.name}")
    if isinstance(lookup.rhs, Col):
        right = t.operand(lookup.rhs)
        comparable = left.is_plain and right.is_plain and type(left.field) is type(right.field)
        if left.navigated or right.navigated or not comparable:
            raise Unsupported(f"comparing {left.field.name} with {right.field.name}")
        return odata.Compare(left.path, op, odata.Prop(right.path))
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"comparing {left.field.name} with an expression")
    values = left.remote_values([lookup.rhs]) if lookup.rhs is not None else [None]
    if not values:  # a row that exists only locally: no remote record points at it
        if op == "eq":
            return odata.FALSE
        raise Unsupported(f"ordering {left.field.name} by a local-only row")
    if values[0] is None:
        return odata.Prop(left.path).is_null() if op == "eq" else odata.FALSE
    return odata.Compare(left.path, op, values[0])


@renders(*STRING_MATCHES)
def string_match(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if negated:
        raise Unsupported(f"a negated text match on {left.field.name}")
    if not lookup.rhs_is_direct_value() or not isinstance(lookup.rhs, str):
        raise Unsupported(f"a text match on {left.field.name} with an expression")
    return odata.StringMatch(left.path, STRING_MATCHES[lookup.lookup_name], lookup.rhs)


@renders("in")
def membership(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if negated and left.is_text:
        raise Unsupported(f"a negated text match on {left.field.name}")
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"{left.field.name}__in a subquery")
    values = [v for v in left.remote_values(list(lookup.rhs)) if v is not None]
    if not left.navigated:
        return odata.Prop(left.path).isin(values)
    if len(values) > MAX_NAVIGATED_IN:  # query functions take no navigation path
        raise Unsupported(
            f"{left.field.name}__in with over {MAX_NAVIGATED_IN} values across a relation"
        )
    return odata.or_(*(odata.Prop(left.path).eq(v) for v in values)) if values else odata.FALSE


@renders("range")
def between(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if left.is_text or not left.is_plain:
        raise Unsupported(f"a range on {left.field.name}")
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"a range on {left.field.name} with expressions")
    low, high = left.remote_values(list(lookup.rhs))
    return odata.Prop(left.path).ge(low) & odata.Prop(left.path).le(high)


@renders("isnull")
def is_null(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if left.is_text and not left.field.null:
        # a local "" is a remote null, so "not null" cannot be told apart remotely
        return odata.Prop(left.path).is_null() if lookup.rhs else odata.TRUE
    return odata.Prop(left.path).is_null(bool(lookup.rhs))


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=timezone.get_current_timezone())


def _span(t: Translator, lookup, start: Any, end: Any) -> odata.Node:
    """A year or a day as the half-open range [start, end) of the column, compared as the
    lookup asks, as Django's own year lookups do."""
    left = t.operand(_base(lookup.lhs))
    if not left.is_plain:
        raise Unsupported(f"a date part of {left.field.name}")
    prop = odata.Prop(left.path)
    return {
        "exact": prop.ge(start) & prop.lt(end),
        "gt": prop.ge(end),
        "gte": prop.ge(start),
        "lt": prop.lt(start),
        "lte": prop.lt(end),
    }[lookup.lookup_name]


@renders(
    django_lookups.YearExact,
    django_lookups.YearGt,
    django_lookups.YearGte,
    django_lookups.YearLt,
    django_lookups.YearLte,
)
def year(t: Translator, lookup, negated: bool) -> odata.Node:
    if not lookup.rhs_is_direct_value():
        raise Unsupported("a year compared with an expression")
    number = int(lookup.rhs)
    if isinstance(_base(lookup.lhs).target, models.DateTimeField):
        start, end = _day_start(dt.date(number, 1, 1)), _day_start(dt.date(number + 1, 1, 1))
    else:
        start, end = dt.date(number, 1, 1), dt.date(number + 1, 1, 1)
    return _span(t, lookup, start, end)


def date_of_datetime(t: Translator, lookup, negated: bool) -> odata.Node:
    """``created__date`` compared with a day: that day's span in the current time zone."""
    if lookup.lookup_name not in COMPARISONS or not lookup.rhs_is_direct_value():
        raise Unsupported(f"'{lookup.lookup_name}' on the date of a date-time")
    day = lookup.rhs
    return _span(t, lookup, _day_start(day), _day_start(day + dt.timedelta(days=1)))


def translate(queryset: models.QuerySet) -> RemotePlan:
    return Translator(queryset).translate()
