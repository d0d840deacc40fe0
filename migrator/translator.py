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

Conditions on related rows are only sound if those rows are current too. Forward foreign keys
are filtered through navigation properties, and the sync engine refreshes the related records
along with the records it reads; one-to-many relations and subqueries are in ``relations``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.db import connections, models, router
from django.db.models import lookups as django_lookups
from django.db.models.expressions import Col, ColPairs
from django.db.models.functions import ExtractIsoYear, TruncDate
from django.db.models.sql.datastructures import Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import NothingNode, WhereNode
from django.utils import timezone

from cdms_api import odata
from cdms_api.client import MAX_URL_LENGTH

from .converters import converter_for
from .folding import folded, folding_differs
from .loader import stored_only
from .mapping import FieldMap
from .operands import (
    Operand,
    Unsupported,
    base_column,
    column_of,
    empty_text,
    field_map,
    mapping_of,
)
from .relations import RelatedRead, RelationConditions, exists_of, reverse_joins

COMPARISONS = {"exact": "eq", "iexact": "eq", "gt": "gt", "gte": "ge", "lt": "lt", "lte": "le"}
MAX_NAVIGATED_IN = 50
#: The longest condition sent (percent-encoded): a quarter of the URL limit, so that a filter
#: of a few of them still fits. A longer one is relaxed; a longer In list is split instead.
LEAF_LIMIT = MAX_URL_LENGTH // 4
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
    """The remote reads for a query. ``filter`` is ``odata.TRUE`` for no ``$filter`` and
    ``odata.FALSE`` when nothing can match (no request at all). ``keys`` is set when the filter
    is exactly a set of remote keys: a key a complete read does not return was deleted.
    ``refresh`` is the tree of foreign keys the local query reads through (``$expand`` brings
    their records along, ``expand``). ``halves``: where the local database sorts the nulls of
    the first ordering field at the other end than the remote, the two conditions on it whose
    records it orders one after the other, each as the remote does: the first ``top`` records
    of each hold the local first ones. ``related`` are read first; ``backfill`` (foreign key,
    model) are the related rows of every record read, synced after the main read: what a
    condition on the existence or the number of related rows needs, and what the query shows
    of them. ``exact``: the filter selects exactly the records the local query matches, no
    more: nothing relaxed, no text condition (Dataverse compares text case-insensitively), no
    null read as a default, no value a converter of one's own reads differently."""

    filter: odata.Node
    orderby: list[str] = field(default_factory=list)
    top: int | None = None
    relaxed: list[str] = field(default_factory=list)
    keys: frozenset[str] | None = None
    related: list[RelatedRead] = field(default_factory=list)
    backfill: list[tuple[str, type[models.Model]]] = field(default_factory=list)
    refresh: dict[str, dict] = field(default_factory=dict)
    expand: list[str] = field(default_factory=list)
    halves: Halves | None = None
    exact: bool = False


class Translator(RelationConditions):
    def __init__(self, query: Query):
        self.query = query
        self.model = query.model
        self.relaxed: list[str] = []
        self.related: list[RelatedRead] = []
        self.backfill: list[tuple[str, type[models.Model]]] = []
        self.exact = True  # the remote filter selects the true matches, no more
        self.disjunctions = 0  # how many ORs (after De Morgan) the walk is inside
        self.folds = folding_differs(query.model)
        self.nulls_as_remote = nulls_sort_as_remote(query.model)

    def translate(self) -> RemotePlan:
        where = self.query.where
        node = self.walk(where, negations=0) if where.children else odata.TRUE
        orderby, top, halves = self.ordering()
        if top is not None:  # the first records must be ones the loader can store
            storable = stored_only(mapping_of(self.model))
            if storable is None:  # which those are cannot be told remotely: every match
                top = halves = None
            else:
                node = odata.and_(node, *storable)
        keys = self.key_set(node)
        refresh = forward_joins(self.query)
        backfill = list(dict.fromkeys([*self.backfill, *reverse_joins(self.query)]))
        return RemotePlan(
            node,
            orderby,
            top,
            self.relaxed,
            keys,
            related=self.related,
            backfill=backfill,
            refresh=refresh,
            expand=expand_of(self.model, refresh),
            halves=halves,
            exact=self.exact,
        )

    # the walk ---------------------------------------------------------------------------------
    def walk(self, node: Any, negations: int) -> odata.Node:
        if isinstance(node, WhereNode):
            depth = negations + node.negated
            if node.connector not in ("AND", "OR"):
                return self.relax(f"a {node.connector} condition", depth)
            disjunction = (node.connector == "OR") != (depth % 2 == 1)
            self.disjunctions += disjunction
            children = [self.walk(child, depth) for child in node.children]
            self.disjunctions -= disjunction
            combined = odata.and_(*children) if node.connector == "AND" else odata.or_(*children)
            return odata.not_(combined) if node.negated else combined
        if isinstance(node, NothingNode):
            return odata.FALSE
        subquery = exists_of(node)
        if subquery is not None:
            return self.through_subquery(node, subquery, negations)
        if isinstance(node, django_lookups.Lookup):
            reverse = self.reverse_join(node)
            if reverse is not None:
                return self.through_reverse(node, *reverse, negations)
            try:
                return self.lookup(node, negations % 2 == 1)
            except Unsupported as reason:
                return self.relax(f"'{self.path(node)}' ({reason})", negations)
        return self.relax(f"a {type(node).__name__} condition", negations)

    def relax(self, what: str, negations: int) -> odata.Node:
        self.relaxed.append(what)
        self.exact = False
        return odata.FALSE if negations % 2 else odata.TRUE

    def path(self, lookup: django_lookups.Lookup) -> str:
        """The lookup as it was written: ``parent__founded_on__month__gte``."""
        transforms, expression = [], lookup.lhs
        while not isinstance(expression, Col) and hasattr(expression, "lhs"):
            transforms.append(getattr(expression, "lookup_name", None) or type(expression).__name__)
            expression = expression.lhs
        if not isinstance(expression, Col):
            name = getattr(expression, "refs", None) or type(expression).__name__.lower()
            return f"{name}__{lookup.lookup_name}"
        relations, alias = [], expression.alias
        while isinstance(join := self.query.alias_map.get(alias), Join):
            relations.append(join.join_field.name)
            alias = join.parent_alias
        parts = [*reversed(relations), expression.target.name, *reversed(transforms)]
        if lookup.lookup_name != "exact":
            parts.append(lookup.lookup_name)
        return "__".join(parts)

    # conditions across a one-to-many relation -------------------------------------------------
    def lookup(self, lookup: django_lookups.Lookup, negated: bool) -> odata.Node:
        lookup = one_column(lookup)
        if isinstance(lookup.lhs, TruncDate):
            renderer = date_of_datetime
        else:
            renderer = RENDERERS.get(type(lookup)) or RENDERERS.get(lookup.lookup_name)
        if renderer is None:
            raise Unsupported(f"'{lookup.lookup_name}' has no Dataverse form")
        node = renderer(self, lookup, negated)
        if too_long(node, negated):
            raise Unsupported(f"a value too long for the remote's URL limit ({LEAF_LIMIT})")
        base = base_column(lookup.lhs)  # a column: the renderer has read it as an operand
        left = self.operand(base)
        if isinstance(base.target, models.CharField | models.TextField):
            self.exact = False  # Dataverse compares text case-insensitively: a superset
        if not reads_as_stored(left):
            self.exact = False  # a converter of one's own may read a value as another (null)
        if left.reads_null_as_default and not isinstance(node, odata.Constant):
            self.exact = False  # a remote null is stored as the default, which may match or not
        if isinstance(node, odata.Constant | odata.IsNull):
            return node
        if negated:  # not (x eq 5) is unknown remotely where x is null: keep those records
            return node & odata.Prop(left.path).ne(None)
        if left.reads_null_as_default:  # the default a remote null reads as may match
            return node | odata.Prop(left.path).is_null()
        return node

    def operand(self, expression: Any) -> Operand:
        """The remote property a column is, following forward foreign keys as navigation."""
        col = column_of(expression)
        navigation, alias = [], col.alias
        while isinstance(join := self.query.alias_map[alias], Join):
            fk = join.join_field
            if not isinstance(fk, models.ForeignKey):  # reverse_join() has dealt with these
                raise Unsupported("a condition across a one-to-many relation")
            fm = mapping_of(fk.model).get(fk.name)
            if fm is None:
                raise Unsupported(f"a condition across {fk.model.__name__}.{fk.name}")
            navigation.append(fm.navigation)
            alias = join.parent_alias
        navigation.reverse()
        target = col.target
        mapping = mapping_of(target.model)
        if target.name == "cdms_pk" or target.primary_key:
            kind = "key" if target.name == "cdms_pk" else "local_pk"
            path = "/".join([*navigation, mapping.key])
            return Operand(path, target, kind, None, bool(navigation))
        fm = field_map(mapping, target.name)
        if fm is None:
            raise Unsupported(f"the local-only field {target.model.__name__}.{target.name}")
        return Operand("/".join([*navigation, fm.remote]), target, "field", fm, bool(navigation))

    # ordering and slicing -----------------------------------------------------------------------
    def ordering(self) -> tuple[list[str], int | None, Halves | None]:
        """``$orderby`` for the mapped ordering fields, and ``$top`` for a slice when the
        remote can order exactly as the local query does (``translate`` then keeps out of
        the first records those the loader cannot store), and the ``halves`` of a nullable
        first field where the local database sorts nulls highest. A random order (``'?'``) is
        the local database's: the filtered read is made whole, and the local query orders."""
        query = self.query
        names = list(query.order_by) or (
            list(query.get_meta().ordering) if query.default_ordering else []
        )
        # $top is sound only if the remote returns exactly the true matches and orders them
        # exactly as the local database: not text (another collation), not a null read as a
        # default (it sorts elsewhere remotely), not lookups (GUIDs vs local ids); nulls sort
        # lowest remotely, highest on some databases (``halves``).
        orderby, complete, nullable = [], self.exact, []
        for name in names:
            fm = None
            if isinstance(name, str):
                fm = field_map(mapping_of(self.model), name.lstrip("-"))
            if fm is None:
                complete = False
                continue
            if any(o.split()[0] == fm.remote for o in orderby):
                continue  # ordered by it already (the admin repeats its ordering)
            # reverse(), last() and latest() flip every direction (Django's standard_ordering)
            descending = name.startswith("-") == query.standard_ordering
            orderby.append(f"{fm.remote} desc" if descending else fm.remote)
            if not self.orders_as_remote(fm):
                complete = False
            if fm.field.null:
                nullable.append(fm)
        plain = not (query.distinct or query.group_by or query.combinator)
        top = query.high_mark if query.high_mark is not None and complete and plain else None
        halves = None
        if top is not None and nullable and not self.nulls_as_remote:
            halves = halves_of(orderby, nullable)
            top = top if halves else None
        return orderby, top, halves

    @staticmethod
    def orders_as_remote(fm: FieldMap) -> bool:
        """Whether the remote orders the values of ``fm`` as the local database does. A
        nullable field only with its standard converter (an option set reads unknown values
        as null, which sort elsewhere than the remote's values)."""
        if (
            fm.is_lookup
            or fm.field.has_default()
            or isinstance(fm.field, models.CharField | models.TextField)
        ):
            return False
        return not fm.field.null or fm.converter is converter_for(fm.field)

    def key_set(self, node: odata.Node) -> frozenset[str] | None:
        """The keys, when the whole filter is ``key eq k`` or ``key In (...)``."""
        key = mapping_of(self.model).key
        if self.relaxed:
            return None
        if isinstance(node, odata.Compare) and node.op == "eq" and node.prop.name == key:
            return frozenset({str(node.value)})
        if isinstance(node, odata.QueryFunction) and node.name == "In" and node.prop.name == key:
            return frozenset(str(v) for v in node.values)
        return None


Halves = tuple[odata.Node, odata.Node]


def reads_as_stored(operand: Operand) -> bool:
    """Whether the local column holds what the remote property does, value for value: a key,
    a lookup, or a field with its type's own converter (``OptionSet`` reads values it does not
    know as null)."""
    if operand.kind != "field" or operand.mapping.is_lookup:
        return True
    return type(operand.mapping.converter) is type(converter_for(operand.field))


def halves_of(orderby: list[str], nullable: list[FieldMap]) -> Halves | None:
    """Where the local database sorts nulls highest (PostgreSQL), an order whose first field
    is its only nullable one puts the records with a value there and those with a null one
    after the other (descending: the nulls first), each ordered as remotely: the conditions
    of the two. None for any other order."""
    [fm, *others] = nullable
    if others or orderby[0].split()[0] != fm.remote:
        return None
    return odata.Prop(fm.remote).ne(None), odata.Prop(fm.remote).is_null()


def nulls_sort_as_remote(model: type[models.Model]) -> bool:
    """Whether the database ``model`` is read from sorts nulls as Dataverse does: lower than
    any value (first in ascending order, last in descending), as SQLite does and PostgreSQL
    does not."""
    return not connections[router.db_for_read(model)].features.nulls_order_largest


def forward_joins(query: Query) -> dict[str, dict]:
    """The foreign keys the query joins through from its model, as a tree ``{name: {...}}``
    (``parent__parent__name`` -> ``{"parent": {"parent": {}}}``), and those it selects
    related (``select_related``): the local query reads the related rows too, so a read
    refreshes them along with the records."""
    trees: dict[str, dict] = {query.base_table: {}} if query.base_table else {}
    for alias, join in query.alias_map.items():  # a join comes after the one it starts from
        forward = isinstance(join, Join) and isinstance(join.join_field, models.ForeignKey)
        used = query.alias_refcount.get(alias)  # not a join trimmed away (organisation__in)
        if forward and used and join.parent_alias in trees:
            trees[alias] = trees[join.parent_alias].setdefault(join.join_field.name, {})
    tree = trees.get(query.base_table, {})
    if isinstance(query.select_related, dict):
        _merge(tree, query.select_related)
    return tree


def _merge(tree: dict, more: dict) -> None:
    for name, subtree in more.items():
        _merge(tree.setdefault(name, {}), subtree)


def expand_of(model: type[models.Model], refresh: dict) -> list[str]:
    """``$expand`` for the foreign keys in ``refresh``: the related records come with the
    records read, to be refreshed with them."""
    items = []
    for name in refresh:
        fm = mapping_of(model).get(name)
        if fm is not None and fm.is_lookup:
            items.append(f"{fm.navigation}($select={','.join(fm.target.cdms.select)})")
    return items


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
    if op != "eq" and not left.is_plain:  # GUIDs do not sort as local ids do
        raise Unsupported(f"an ordered comparison of keys ({left.field.name})")
    if isinstance(lookup.rhs, Col):
        if lookup.lookup_name == "iexact":  # SQLite's iexact is a LIKE: the column is a pattern
            raise Unsupported(f"{left.field.name}__iexact with another column")
        right = t.operand(lookup.rhs)
        comparable = left.is_plain and right.is_plain and type(left.field) is type(right.field)
        if left.navigated or right.navigated or not comparable:
            raise Unsupported(f"comparing {left.field.name} with {right.field.name}")
        node = odata.Compare(left.path, op, odata.Prop(right.path))
        # two texts that read as "" locally may be null remotely, where null eq null is not true
        return node | (empty_text(left) & empty_text(right)) if left.is_text else node
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"comparing {left.field.name} with an expression")
    values = left.remote_values([lookup.rhs]) if lookup.rhs is not None else [None]
    if not values:  # a row that exists only locally: no remote record points at it
        if op == "eq":
            return odata.FALSE
        raise Unsupported(f"ordering {left.field.name} by a local-only row")
    value = values[0]
    if value is None:
        node = null_of(left, True, negated) if op == "eq" else odata.FALSE
        return empty_text(left) if left.is_text and lookup.rhs == "" else node
    if not _comparable(value):
        raise Unsupported(f"{left.field.name} compared with {value}, which has no OData literal")
    if side := left.beyond_range(value):
        # No remote value lies beyond its type's range: such a comparison is false of every
        # record, or true of every one that has a value. Django may make the latter true of
        # every row, nulls included (PostgreSQL drops the condition): all records are read.
        true_of_all = op != "eq" and (side > 0) == (op in ("lt", "le"))
        return odata.TRUE if true_of_all else odata.FALSE
    if lookup.lookup_name == "iexact" and t.folds and folded(value) != value:
        prop = odata.Prop(left.path)
        return prop.startswith(folded(value), pattern=True) & prop.endswith(
            folded(value), pattern=True
        )
    return odata.Compare(left.path, op, value)


def _comparable(value: Any) -> bool:
    """A value a remote comparison can hold: not null, and no NaN or infinity."""
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


@renders(*STRING_MATCHES)
def string_match(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if negated:
        raise Unsupported(f"a negated text match on {left.field.name}")
    if not lookup.rhs_is_direct_value() or not isinstance(lookup.rhs, str):
        raise Unsupported(f"a text match on {left.field.name} with an expression")
    if lookup.rhs == "" and not left.field.null:  # true of every "", which may be a remote null
        if left.navigated:
            raise Unsupported(f"an empty text match on {left.field.name} across a relation")
        return odata.TRUE
    kind = STRING_MATCHES[lookup.lookup_name]
    if lookup.lookup_name.startswith("i") and t.folds:
        return odata.StringMatch(left.path, kind, folded(lookup.rhs), pattern=True)
    return odata.StringMatch(left.path, kind, lookup.rhs)


@renders("in")
def membership(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if isinstance(lookup.rhs, Query):
        return t.in_subquery(left, lookup.rhs)
    if negated and left.is_text:
        raise Unsupported(f"a negated text match on {left.field.name}")
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"{left.field.name}__in a subquery")
    values = [
        v
        for v in left.remote_values(list(lookup.rhs))
        if v is not None and not left.beyond_range(v)
    ]
    if left.is_text and "" in lookup.rhs:
        return empty_text(left) | membership_of(left, [v for v in values if v != ""])
    return membership_of(left, values)


def membership_of(left: Operand, values: list[Any]) -> odata.Node:
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
    if not (_comparable(low) and _comparable(high)):
        raise Unsupported(f"a range on {left.field.name} with a null or non-finite bound")
    if left.beyond_range(low) > 0 or left.beyond_range(high) < 0:
        return odata.FALSE
    prop = odata.Prop(left.path)
    bounds = [
        *([] if left.beyond_range(low) else [prop.ge(low)]),
        *([] if left.beyond_range(high) else [prop.le(high)]),
    ]
    return odata.and_(*bounds) if bounds else odata.TRUE  # as for a comparison, above


@renders("isnull")
def is_null(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if (left.is_text and not left.field.null) or left.reads_null_as_default:
        # a remote null reads as a local "" (or the field's default): the column is null only
        # where a join finds no row
        if not left.navigated:
            return odata.FALSE if lookup.rhs else odata.TRUE
        if negated == bool(lookup.rhs):  # a remote null would stand for a missing row
            raise Unsupported(f"isnull on {left.field.name} across a relation")
    return null_of(left, bool(lookup.rhs), negated)


def null_of(left: Operand, null: bool, negated: bool) -> odata.Node:
    """``x is null`` (or not). A lookup with several targets is null locally also where it
    points at another table: with a foreign key mapped for each of the others, that is
    ``value eq null or <other>/<key> ne null ...``; without, a remote ``eq null`` would miss
    records, and is relaxed where it would."""
    if not (left.kind == "field" and left.mapping.is_shared):
        return odata.Prop(left.path).is_null(null)
    others = [
        fm
        for fm in mapping_of(left.field.model).fields
        if fm.is_lookup and fm.remote == left.mapping.remote and fm is not left.mapping
    ]
    if others and not left.navigated:
        exact = odata.or_(
            odata.Prop(left.path).is_null(),
            *(odata.Prop(f"{fm.navigation}/{fm.target.cdms.key}").ne(None) for fm in others),
        )
        return exact if null else odata.not_(exact)
    if null != negated:
        raise Unsupported(f"{left.field.name} is null (its lookup may point at another table)")
    return odata.Prop(left.path).is_null(null)


def _day_start(day: dt.date) -> dt.datetime | None:
    """The first instant of a day in the current time zone, in UTC; None past the last
    instant a datetime can hold, and the first one before the first."""
    moment = dt.datetime.combine(day, dt.time(), tzinfo=timezone.get_current_timezone())
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        return None if day.year > 1 else dt.datetime.min.replace(tzinfo=dt.UTC)


def _next(day: dt.date, **step: int) -> dt.date | None:
    """The day after (``days=1``) or the new year after (``years=1``); None past 9999."""
    if day.year == dt.MAXYEAR and (step.get("years") or (day.month, day.day) == (12, 31)):
        return None
    if step.get("years"):
        return dt.date(day.year + 1, 1, 1)
    return day + dt.timedelta(days=1)


def _span(t: Translator, lookup, start: Any, end: Any | None) -> odata.Node:
    """A year or a day as the half-open range [start, end) of the column (``end`` None: no
    end, the span reaches the last date there is), compared as the lookup asks, as Django's
    own year lookups do."""
    left = t.operand(base_column(lookup.lhs))
    if not left.is_plain:
        raise Unsupported(f"a date part of {left.field.name}")
    prop = odata.Prop(left.path)
    before_end = prop.ne(None) if end is None else prop.lt(end)
    return {
        "exact": prop.ge(start) & before_end,
        "gt": odata.FALSE if end is None else prop.ge(end),
        "gte": prop.ge(start),
        "lt": prop.lt(start),
        "lte": before_end,
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
    if isinstance(lookup.lhs, ExtractIsoYear):  # Django registers its year lookups on it too
        raise Unsupported("an ISO year, whose bounds are no calendar year's")
    first = dt.date(int(lookup.rhs), 1, 1)  # as Django, a year beyond 1..9999 is a ValueError
    after = _next(first, years=1)
    if isinstance(base_column(lookup.lhs).target, models.DateTimeField):
        return _span(t, lookup, _day_start(first), after and _day_start(after))
    return _span(t, lookup, first, after)


def date_of_datetime(t: Translator, lookup, negated: bool) -> odata.Node:
    """``created__date`` compared with a day: that day's span in the current time zone."""
    if lookup.lookup_name not in COMPARISONS or not lookup.rhs_is_direct_value():
        raise Unsupported(f"'{lookup.lookup_name}' on the date of a date-time")
    day = lookup.rhs
    after = _next(day, days=1)
    return _span(t, lookup, _day_start(day), after and _day_start(after))


def one_column(lookup: django_lookups.Lookup) -> django_lookups.Lookup:
    """A tuple lookup on a one-column key (Django's prefetch of a foreign key filters with
    ``TupleIn``) as the plain lookup on that column; any other lookup as it is."""
    if not isinstance(lookup.lhs, ColPairs) or len(lookup.lhs) != 1:
        return lookup
    (col,) = lookup.lhs.get_cols()
    if lookup.lookup_name == "in":
        rhs = [value[0] for value in lookup.rhs]
    elif lookup.lookup_name == "isnull":
        rhs = lookup.rhs
    else:
        rhs = lookup.rhs[0]
    return col.get_lookup(lookup.lookup_name)(col, rhs)


def too_long(node: odata.Node, negated: bool) -> bool:
    """A condition that can never fit in a request: longer than ``LEAF_LIMIT`` once encoded,
    unless it is an ``In`` list the client can split over several requests (not negated, and
    each of its values short enough)."""
    if isinstance(node, odata.Constant):
        return False
    if not negated and isinstance(node, odata.QueryFunction) and node.name == "In":
        return any(_encoded_length(value) > LEAF_LIMIT for value in node.quoted_values())
    return _encoded_length(odata.render(node)) > LEAF_LIMIT


def _encoded_length(text: str) -> int:
    return len(quote(text, safe=""))


def translate(query: Query) -> RemotePlan:
    """The remote plan for a query (read from a copy: the query is left as it was)."""
    return Translator(query.chain()).translate()
