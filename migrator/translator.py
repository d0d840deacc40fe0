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
along with the records it reads. A condition across a one-to-many relation
(``contacts__first_name`` on an organisation, or the subquery ``exclude`` makes of it) becomes a
``RelatedRead``: the related model's rows that could match are synced first, with their own
remote read, and the main read then asks for the records they point at (``LinkedKeys``). What
no read can make current is refused with ``CDMSNotSupported``, never silently answered from
stale rows.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import lookups as django_lookups
from django.db.models.expressions import Col, Exists
from django.db.models.fields.reverse_related import ManyToOneRel
from django.db.models.functions import TruncDate
from django.db.models.sql.datastructures import Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND, NothingNode, WhereNode
from django.utils import timezone

from cdms_api import odata
from cdms_api.errors import CDMSNotSupported

from .converters import DateTimeConverter
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
    is exactly a set of remote keys: a key the remote does not return was deleted. ``related``
    are read first; ``backfill`` (foreign key, model) are the related rows of every record
    read, synced after the main read: what a condition on the existence or the number of
    related rows needs."""

    filter: odata.Node
    orderby: list[str] = field(default_factory=list)
    top: int | None = None
    relaxed: list[str] = field(default_factory=list)
    keys: frozenset[str] | None = None
    related: list[RelatedRead] = field(default_factory=list)
    backfill: list[tuple[str, type[models.Model]]] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class RelatedRead:
    """Rows of another synced model that a condition reads (through a one-to-many relation,
    or in a subquery): ``queryset`` (a syncing queryset of that model) is synced before the
    main read, so that the local query sees them current. When the main read can be narrowed
    to the records they point at, ``link`` is the foreign key on them that does ("" for their
    own keys)."""

    queryset: models.QuerySet
    link: str | None = None


@dataclass(frozen=True, eq=False)
class LinkedKeys(odata.Node):
    """Stands for ``key In (...)``: the remote keys the rows of ``read`` point at, known once
    that read is done (``sync`` puts them in)."""

    key: str
    read: RelatedRead
    number: int

    def render(self) -> str:
        entity_set = self.read.queryset.model.cdms.entity_set
        keys = f"{self.read.link} of" if self.read.link else "keys of"
        return f"{self.key} in ({keys} the {entity_set} read #{self.number})"


class Unsupported(Exception):
    """Raised by a renderer for what it cannot express; the walker relaxes it."""


def _refuse(model: type[models.Model], what: str, why: str) -> CDMSNotSupported:
    return CDMSNotSupported(
        f"The remote cannot serve '{what}' on {model.__name__}: {why}, so the related rows "
        "cannot be kept current. Use skip_cdms() for a local-only query."
    )


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
        self.related: list[RelatedRead] = []
        self.backfill: list[tuple[str, type[models.Model]]] = []
        self.exact = True  # the remote filter selects the true matches, no more

    def translate(self) -> RemotePlan:
        where = self.query.where
        node = self.walk(where, negations=0) if where.children else odata.TRUE
        orderby, top = self.ordering()
        keys = self.key_set(node)
        return RemotePlan(
            node, orderby, top, self.relaxed, keys, related=self.related, backfill=self.backfill
        )

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
        subquery = _exists(node)
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
    def reverse_join(self, lookup: django_lookups.Lookup) -> tuple[str, ManyToOneRel] | None:
        """The alias and relation when the lookup reads rows joined through a one-to-many
        relation (``contacts__first_name``); None for columns of the model and its forward
        foreign keys."""
        found = None
        for col in columns(lookup):
            chain, alias = [], col.alias
            while isinstance(join := self.query.alias_map.get(alias), Join):
                chain.append(join)
                alias = join.parent_alias
            if all(isinstance(join.join_field, models.ForeignKey) for join in chain):
                continue
            if len(chain) != 1 or not isinstance(chain[0].join_field, ManyToOneRel):
                raise _refuse(self.model, self.path(lookup), "it crosses several relations")
            if found not in (None, (col.alias, chain[0].join_field)):
                raise _refuse(self.model, self.path(lookup), "it compares two relations")
            found = (col.alias, chain[0].join_field)
        if found and any(col.alias != found[0] for col in columns(lookup)):
            raise _refuse(self.model, self.path(lookup), "it compares rows of two models")
        return found

    def through_reverse(
        self, lookup: django_lookups.Lookup, alias: str, relation: ManyToOneRel, negations: int
    ) -> odata.Node:
        """A condition on rows joined through a one-to-many relation: the main read asks for
        the records the related rows that meet it point at."""
        read = self.related_rows(relation, alias, [lookup])
        if read is None or negations % 2:
            return self.relax(f"'{self.path(lookup)}' (across a relation)", negations)
        return LinkedKeys(_mapping(self.model).key, read, len(self.related))

    def related_rows(
        self, relation: ManyToOneRel, alias: str, lookups: list[django_lookups.Lookup]
    ) -> RelatedRead | None:
        """Keep current the rows joined (on ``alias``) through a one-to-many relation that
        ``lookups`` read: those that meet them are synced first (a ``RelatedRead``, returned);
        when they ask which related rows exist or how many, the related rows of every record
        read are synced after the main read (``backfill``)."""
        related = relation.related_model
        if not isinstance(getattr(related, "cdms", None), Mapping):
            return None  # local rows only: the local query knows them
        if any(
            isinstance(lookup, django_lookups.IsNull) or not isinstance(_base(lookup.lhs), Col)
            for lookup in lookups
        ):
            self.backfill.append((relation.field.name, related))
            return None
        queryset = _queryset_of(related, [(lookup, alias) for lookup in lookups])
        self.related.append(RelatedRead(queryset, relation.field.name))
        return self.related[-1]

    def in_subquery(self, left: Operand, query: Query) -> odata.Node:
        """``x__in=<queryset>``: the subquery's rows are synced first; the main read then asks
        for the keys they give, when ``x`` holds keys of the model whose keys they give."""
        model = query.model
        if not isinstance(getattr(model, "cdms", None), Mapping):
            raise Unsupported(f"a subquery of {model.__name__}, which is not synced")
        from .manager import CDMSQuerySet

        queryset = CDMSQuerySet(model)
        queryset.query = query.chain()
        queryset.query.subquery = False
        queryset.query.clear_select_fields()
        queryset.query.default_cols = True
        link, gives = _selected_keys(query)
        read = RelatedRead(queryset, link)
        self.related.append(read)
        holds = left.mapping.target if left.kind == "field" else left.field.model
        if (left.kind == "field" and not left.mapping.is_lookup) or gives is not holds:
            raise Unsupported("a subquery whose values are not remote keys")
        if left.navigated:  # query functions take no navigation path
            raise Unsupported("a subquery across a relation")
        return LinkedKeys(left.path, read, len(self.related))

    def through_subquery(self, node: Any, subquery: Exists, negations: int) -> odata.Node:
        """A correlated ``EXISTS`` (what ``exclude`` makes of a condition across a one-to-many
        relation): the related rows it reads are synced first (``RelatedRead``), or after the
        main read when it asks which exist (``backfill``); the subquery itself is relaxed."""
        inner = subquery.query
        what = f"{self.path(node) if isinstance(node, django_lookups.Lookup) else 'a'} subquery"
        if inner.where.connector != AND or inner.where.negated:
            raise _refuse(self.model, what, "its subquery is not a plain AND of conditions")
        own: dict[str, list] = {}  # alias -> its conditions
        outer_rows, by_key = set(), None  # aliases standing for the outer row; its FK to them
        for child in inner.where.children:
            cols = list(columns(child))
            mine = [col for col in cols if col.alias in inner.alias_map]
            theirs = [col for col in cols if col.alias not in inner.alias_map]
            if theirs:  # the correlation with the outer query
                if len(mine) != 1 or len(theirs) != 1 or not theirs[0].target.primary_key:
                    raise _refuse(self.model, what, "its subquery is correlated otherwise")
                if mine[0].target.primary_key and mine[0].target.model is self.model:
                    outer_rows.add(mine[0].alias)
                elif isinstance(mine[0].target, models.ForeignKey):
                    by_key = (mine[0].target.name, mine[0].target.model)
                continue
            if not isinstance(child, django_lookups.Lookup) or len({c.alias for c in cols}) != 1:
                raise _refuse(self.model, what, "its subquery compares rows of two models")
            exists = isinstance(child, django_lookups.IsNull) and not child.rhs
            own_key = mine[0].target.primary_key and not isinstance(
                inner.alias_map[mine[0].alias], Join
            )
            if exists and own_key:
                continue  # "the row exists": true of every row the subquery reads
            own.setdefault(cols[0].alias, []).append(child)
        reads = len(self.related) + len(self.backfill)
        for alias, lookups in own.items():
            join = inner.alias_map[alias]
            if alias in outer_rows:
                continue  # conditions on the outer row itself: it is read, decided locally
            if not isinstance(join, Join):
                self.read_related(alias, lookups)
            elif isinstance(join.join_field, ManyToOneRel) and join.parent_alias in outer_rows:
                self.related_rows(join.join_field, alias, lookups)
            else:
                raise _refuse(self.model, what, "its subquery crosses relations")
        synced = by_key and isinstance(getattr(by_key[1], "cdms", None), Mapping)
        if synced and len(self.related) + len(self.backfill) == reads:  # which rows exist
            self.backfill.append(by_key)
        return self.relax(f"'{what}' (a subquery)", negations)

    def read_related(self, alias: str, lookups: list[django_lookups.Lookup]) -> None:
        """Sync first the rows of another model that ``lookups`` (on ``alias``) select."""
        model = next(columns(lookups[0])).target.model
        if isinstance(getattr(model, "cdms", None), Mapping):
            self.related.append(RelatedRead(_queryset_of(model, [(x, alias) for x in lookups])))

    def lookup(self, lookup: django_lookups.Lookup, negated: bool) -> odata.Node:
        if isinstance(lookup.lhs, TruncDate):
            renderer = date_of_datetime
        else:
            renderer = RENDERERS.get(type(lookup)) or RENDERERS.get(lookup.lookup_name)
        if renderer is None:
            raise Unsupported(f"'{lookup.lookup_name}' has no Dataverse form")
        node = renderer(self, lookup, negated)
        base = _base(lookup.lhs)
        if isinstance(base, Col) and isinstance(base.target, models.CharField | models.TextField):
            self.exact = False  # Dataverse compares text case-insensitively: a superset
        if negated and not isinstance(node, odata.Constant | odata.IsNull):
            node = node & odata.Prop(self.operand(_base(lookup.lhs)).path).ne(None)
        return node

    def operand(self, expression: Any) -> Operand:
        """The remote property a column is, following forward foreign keys as navigation."""
        col = _column(expression)
        navigation, alias = [], col.alias
        while isinstance(join := self.query.alias_map[alias], Join):
            fk = join.join_field
            if not isinstance(fk, models.ForeignKey):  # reverse_join() has dealt with these
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
        fm = _field_map(mapping, target.name)
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
        # $top is sound only if the remote returns exactly the true matches and orders them
        # exactly as the local database: not text (another collation), not nullable columns
        # (where nulls sort differs by database), not lookups (GUIDs vs local ids)
        orderby, complete = [], self.exact
        for name in names:
            fm = None
            if isinstance(name, str):
                fm = _field_map(_mapping(self.model), name.lstrip("-"))
            if fm is None:
                complete = False
                continue
            orderby.append(f"{fm.remote} desc" if name.startswith("-") else fm.remote)
            if (
                fm.is_lookup
                or fm.field.null
                or isinstance(fm.field, models.CharField | models.TextField)
            ):
                complete = False
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


def _field_map(mapping: Mapping, name: str) -> FieldMap | None:
    """A mapped field, or ``cdms_modified``: the remote ``modifiedon``."""
    if name == "cdms_modified":
        return FieldMap(mapping.model._meta.get_field(name), "modifiedon", DateTimeConverter())
    return mapping.get(name)


def _column(expression: Any) -> Col:
    if isinstance(expression, Col):
        return expression
    name = getattr(expression, "lookup_name", None) or type(expression).__name__
    raise Unsupported(f"'{name}' has no Dataverse form")


def columns(expression: Any):
    """Every column an expression (a lookup, a transform, an F() on its right) reads."""
    if isinstance(expression, Col):
        yield expression
        return
    if isinstance(expression, Exists) or not hasattr(expression, "get_source_expressions"):
        return  # a value, or a query of its own (see Translator.through_subquery)
    for source in expression.get_source_expressions():
        if source is not None:
            yield from columns(source)


def _selected_keys(query: Query) -> tuple[str | None, type[models.Model] | None]:
    """What the one column a subquery selects gives: its rows' own keys (``""``, the model),
    the keys a synced foreign key of theirs holds (its name, its target), or nothing."""
    if len(query.select) != 1 or not isinstance(query.select[0], Col):
        return None, None
    col = query.select[0]
    if isinstance(query.alias_map.get(col.alias), Join):
        return None, None
    target = col.target
    if target.primary_key or target.name == "cdms_pk":
        return "", target.model
    fm = _mapping(target.model).get(target.name) if isinstance(target, models.ForeignKey) else None
    if fm is not None and fm.is_lookup:
        return target.name, target.related_model
    return None, None


def _exists(node: Any) -> Exists | None:
    """The subquery of ``EXISTS(...)`` or ``EXISTS(...) = true`` (what ``exclude`` across a
    one-to-many relation makes)."""
    if isinstance(node, Exists):
        return node
    if isinstance(node, django_lookups.Lookup) and isinstance(node.lhs, Exists):
        return node.lhs
    return None


def _queryset_of(model: type[models.Model], lookups: list[tuple[Any, str]]) -> models.QuerySet:
    """A syncing queryset of ``model`` with ``lookups`` (each on the alias given, in another
    query) as its conditions."""
    from .manager import CDMSQuerySet

    queryset = CDMSQuerySet(model)
    base = queryset.query.get_initial_alias()
    for lookup, alias in lookups:
        queryset.query.where.add(lookup.relabeled_clone({alias: base}), AND)
    return queryset


def _base(expression: Any) -> Any:
    """The column under transforms (``created__year`` -> ``created``)."""
    while not isinstance(expression, Col) and hasattr(expression, "lhs"):
        expression = expression.lhs
    return expression


def _empty(operand: Operand) -> odata.Node:
    """Remote values of a text that reads as "" locally: null, or '' as written by others."""
    return odata.Prop(operand.path).is_null() | odata.Prop(operand.path).eq("")


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
        if lookup.lookup_name == "iexact":  # SQLite's iexact is a LIKE: the column is a pattern
            raise Unsupported(f"{left.field.name}__iexact with another column")
        right = t.operand(lookup.rhs)
        comparable = left.is_plain and right.is_plain and type(left.field) is type(right.field)
        if left.navigated or right.navigated or not comparable:
            raise Unsupported(f"comparing {left.field.name} with {right.field.name}")
        node = odata.Compare(left.path, op, odata.Prop(right.path))
        # two texts that read as "" locally may be null remotely, where null eq null is not true
        return node | (_empty(left) & _empty(right)) if left.is_text else node
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"comparing {left.field.name} with an expression")
    values = left.remote_values([lookup.rhs]) if lookup.rhs is not None else [None]
    if not values:  # a row that exists only locally: no remote record points at it
        if op == "eq":
            return odata.FALSE
        raise Unsupported(f"ordering {left.field.name} by a local-only row")
    if values[0] is None:
        node = odata.Prop(left.path).is_null() if op == "eq" else odata.FALSE
        return _empty(left) if left.is_text and lookup.rhs == "" else node
    return odata.Compare(left.path, op, values[0])


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
    return odata.StringMatch(left.path, STRING_MATCHES[lookup.lookup_name], lookup.rhs)


@renders("in")
def membership(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if isinstance(lookup.rhs, Query):
        return t.in_subquery(left, lookup.rhs)
    if negated and left.is_text:
        raise Unsupported(f"a negated text match on {left.field.name}")
    if not lookup.rhs_is_direct_value():
        raise Unsupported(f"{left.field.name}__in a subquery")
    values = [v for v in left.remote_values(list(lookup.rhs)) if v is not None]
    if left.is_text and "" in lookup.rhs:
        return _empty(left) | membership_of(left, [v for v in values if v != ""])
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
    return odata.Prop(left.path).ge(low) & odata.Prop(left.path).le(high)


@renders("isnull")
def is_null(t: Translator, lookup, negated: bool) -> odata.Node:
    left = t.operand(lookup.lhs)
    if left.is_text and not left.field.null:
        # a remote null reads as a local "": the column is null only where a join finds no row
        if not left.navigated:
            return odata.FALSE if lookup.rhs else odata.TRUE
        if negated == bool(lookup.rhs):  # a remote null would stand for a missing row
            raise Unsupported(f"isnull on {left.field.name} across a relation")
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
