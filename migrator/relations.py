"""Conditions on related rows across a one-to-many relation, for the translator.

A condition across a one-to-many relation (``contacts__first_name`` on an organisation, or the
subquery ``exclude`` makes of it) becomes a ``RelatedRead``: the related model's rows that could
match are synced first, with their own remote read, and the main read then asks for the records
they point at (``LinkedKeys``). When a condition asks which related rows exist or how many,
the related rows of every record read are synced after the main read (``backfill``). What no
read can make current is refused with ``CDMSNotSupported``, never answered from stale rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models import lookups as django_lookups
from django.db.models.expressions import Col, Exists
from django.db.models.fields.reverse_related import ManyToOneRel
from django.db.models.sql.datastructures import Join
from django.db.models.sql.query import Query
from django.db.models.sql.where import AND

from cdms_api import odata
from cdms_api.errors import CDMSNotSupported

from .mapping import Mapping
from .operands import Operand, Unsupported, base_column, mapping_of


@dataclass(frozen=True, eq=False)
class RelatedRead:
    """Rows of another synced model that a condition reads (through a one-to-many relation,
    or in a subquery): ``query`` (of that model) is synced before the main read, so that the
    local query sees them current. When the main read can be narrowed to the records they
    point at, ``link`` is the foreign key on them that does ("" for their own keys)."""

    query: Query
    link: str | None = None


@dataclass(frozen=True, eq=False)
class LinkedKeys(odata.Node):
    """Stands for ``key In (...)``: the remote keys the rows of ``read`` point at, known once
    that read is done (``sync`` puts them in)."""

    key: str
    read: RelatedRead
    number: int

    def render(self) -> str:
        entity_set = self.read.query.model.cdms.entity_set
        keys = f"{self.read.link} of" if self.read.link else "keys of"
        return f"{self.key} in ({keys} the {entity_set} read #{self.number})"


def refuse(model: type[models.Model], what: str, why: str) -> CDMSNotSupported:
    return CDMSNotSupported(
        f"The remote cannot serve '{what}' on {model.__name__}: {why}, so the related rows "
        "cannot be kept current. Use skip_cdms() for a local-only query."
    )


class RelationConditions:
    """The translator's handling of one-to-many relations and subqueries (a mixin of
    ``Translator``, which provides ``query``, ``model``, ``related``, ``backfill``,
    ``disjunctions``, ``relax()`` and ``path()``)."""

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
                raise refuse(self.model, self.path(lookup), "it crosses several relations")
            if found not in (None, (col.alias, chain[0].join_field)):
                raise refuse(self.model, self.path(lookup), "it compares two relations")
            found = (col.alias, chain[0].join_field)
        if found and any(col.alias != found[0] for col in columns(lookup)):
            raise refuse(self.model, self.path(lookup), "it compares rows of two models")
        return found

    def through_reverse(
        self, lookup: django_lookups.Lookup, alias: str, relation: ManyToOneRel, negations: int
    ) -> odata.Node:
        """A condition on rows joined through a one-to-many relation: the main read asks for
        the records the related rows that meet it point at. Inside an OR, the join returns
        every related row of the records the other branches select (one result row each), so
        those are synced too (``backfill``)."""
        if self.disjunctions and isinstance(getattr(relation.related_model, "cdms", None), Mapping):
            self.backfill.append((relation.field.name, relation.related_model))
        read = self.related_rows(relation, alias, [lookup])
        if read is None or negations % 2:
            return self.relax(f"'{self.path(lookup)}' (across a relation)", negations)
        return LinkedKeys(mapping_of(self.model).key, read, len(self.related))

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
            isinstance(lookup, django_lookups.IsNull)
            or not isinstance(base_column(lookup.lhs), Col)
            for lookup in lookups
        ):
            self.backfill.append((relation.field.name, related))
            return None
        query = query_of(related, [(lookup, alias) for lookup in lookups])
        self.related.append(RelatedRead(query, relation.field.name))
        return self.related[-1]

    def in_subquery(self, left: Operand, query: Query) -> odata.Node:
        """``x__in=<queryset>``: the subquery's rows are synced first; the main read then asks
        for the keys they give, when ``x`` holds keys of the model whose keys they give."""
        model = query.model
        if not isinstance(getattr(model, "cdms", None), Mapping):
            raise Unsupported(f"a subquery of {model.__name__}, which is not synced")
        rows = query.chain()
        rows.subquery = False
        rows.clear_select_fields()
        rows.default_cols = True
        link, gives = selected_keys(query)
        read = RelatedRead(rows, link)
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
            raise refuse(self.model, what, "its subquery is not a plain AND of conditions")
        own: dict[str, list] = {}  # alias -> its conditions
        outer_rows, by_key = set(), None  # aliases standing for the outer row; its FK to them
        for child in inner.where.children:
            cols = list(columns(child))
            mine = [col for col in cols if col.alias in inner.alias_map]
            theirs = [col for col in cols if col.alias not in inner.alias_map]
            if theirs:  # the correlation with the outer query
                if len(mine) != 1 or len(theirs) != 1 or not theirs[0].target.primary_key:
                    raise refuse(self.model, what, "its subquery is correlated otherwise")
                if mine[0].target.primary_key and mine[0].target.model is self.model:
                    outer_rows.add(mine[0].alias)
                elif isinstance(mine[0].target, models.ForeignKey):
                    by_key = (mine[0].target.name, mine[0].target.model)
                continue
            if not isinstance(child, django_lookups.Lookup) or len({c.alias for c in cols}) != 1:
                raise refuse(self.model, what, "its subquery compares rows of two models")
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
                raise refuse(self.model, what, "its subquery crosses relations")
        synced = by_key and isinstance(getattr(by_key[1], "cdms", None), Mapping)
        if synced and len(self.related) + len(self.backfill) == reads:  # which rows exist
            self.backfill.append(by_key)
        return self.relax(f"'{what}' (a subquery)", negations)

    def read_related(self, alias: str, lookups: list[django_lookups.Lookup]) -> None:
        """Sync first the rows of another model that ``lookups`` (on ``alias``) select."""
        model = next(columns(lookups[0])).target.model
        if isinstance(getattr(model, "cdms", None), Mapping):
            self.related.append(RelatedRead(query_of(model, [(x, alias) for x in lookups])))


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


def selected_keys(query: Query) -> tuple[str | None, type[models.Model] | None]:
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
    fm = (
        mapping_of(target.model).get(target.name) if isinstance(target, models.ForeignKey) else None
    )
    if fm is not None and fm.is_lookup:
        return target.name, target.related_model
    return None, None


def exists_of(node: Any) -> Exists | None:
    """The subquery of ``EXISTS(...)`` or ``EXISTS(...) = true`` (what ``exclude`` across a
    one-to-many relation makes)."""
    if isinstance(node, Exists):
        return node
    if isinstance(node, django_lookups.Lookup) and isinstance(node.lhs, Exists):
        return node.lhs
    return None


def query_of(model: type[models.Model], lookups: list[tuple[Any, str]]) -> Query:
    """A query of ``model`` with ``lookups`` (each on the alias given, in another query) as
    its conditions."""
    query = Query(model)
    base = query.get_initial_alias()
    for lookup, alias in lookups:
        query.where.add(lookup.relabeled_clone({alias: base}), AND)
    return query


def reverse_joins(query: Query) -> list[tuple[str, type[models.Model]]]:
    """The one-to-many relations the query reads (in annotations, values, ordering) beyond
    its conditions, as (foreign key on the related model, related model)."""
    conditioned = {col.alias for col in columns(query.where)}
    found = []
    for alias, join in query.alias_map.items():
        relation = getattr(join, "join_field", None)
        if (
            isinstance(relation, ManyToOneRel)
            and join.parent_alias == query.base_table
            and query.alias_refcount.get(alias)
            and alias not in conditioned
            and isinstance(getattr(relation.related_model, "cdms", None), Mapping)
            and relation.related_model.cdms.get(relation.field.name) is not None
        ):
            found.append((relation.field.name, relation.related_model))
    return found
