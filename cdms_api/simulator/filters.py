"""``$filter`` as Dataverse reads it: parsed by odata-query, checked against what Dataverse
supports, compiled into a SQLite ``WHERE`` clause.

SQL's three-valued logic is Dataverse's own (it runs on SQL Server): a comparison with a null
column is unknown, ``not`` of unknown is unknown, and only rows for which the whole filter is
true are returned. So the compiled SQL keeps nulls as SQL does, and never rewrites them away.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import _TIME, ODataLexer, ODataParser

from .errors import DataverseError, bad_query
from .schema import EntitySet, Property, Schema
from .types import DateTimeOffsetType, DateType, StringType, literal_edm

CRM_NAMESPACE = ("Microsoft", "Dynamics", "CRM")
COMPARATORS = {
    ast.Eq: ("=", "Equal"),
    ast.NotEq: ("!=", "NotEqual"),
    ast.Lt: ("<", "LessThan"),
    ast.LtE: ("<=", "LessThanOrEqual"),
    ast.Gt: (">", "GreaterThan"),
    ast.GtE: (">=", "GreaterThanOrEqual"),
}
MIRRORED = {ast.Lt: ast.Gt(), ast.LtE: ast.GtE(), ast.Gt: ast.Lt(), ast.GtE: ast.LtE()}
STRING_FUNCTIONS = {
    "contains": lambda v: f"%{v}%",
    "startswith": lambda v: f"{v}%",
    "endswith": lambda v: f"%{v}",
}
ALIAS = re.compile(r"@[A-Za-z_][A-Za-z0-9_]*")
# OData's ABNF: a year is "0" 3DIGIT or a longer number from 1000 on; Dataverse takes years
# 0001 to 0999 (odata-query's lexer asks for a first digit from 1 to 9)
_DATE = r"(?:0\d{3}|[1-9]\d{3})-(?:0\d|1[0-2])-(?:[0-2]\d|3[01])"


class DataverseLexer(ODataLexer):
    """odata-query's lexer, with the dates before the year 1000 it refuses."""

    tokens = ODataLexer.tokens

    @_(_DATE + r"T" + _TIME + r"?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?")  # noqa: F821
    def DATETIME(self, t):
        t.value = ast.DateTime(t.value)
        return t

    @_(_DATE)  # noqa: F821
    def DATE(self, t):
        t.value = ast.Date(t.value)
        return t


def parse(text: str, aliases: dict[str, str] | None = None) -> ast._Node:
    """Parse a ``$filter`` value, with Dataverse's ``[...]`` collections and ``@p`` aliases."""
    source = _substitute(text, aliases or {})
    try:
        return ODataParser().parse(DataverseLexer().tokenize(source))
    except ODataException as error:
        raise bad_query(f"Syntax error in $filter '{text}': {error}") from None


def _substitute(text: str, aliases: dict[str, str]) -> str:
    """Replace parameter aliases and turn ``[`` ``]`` into ``(`` ``)``, outside string literals.

    Inside a ``[...]`` collection, JSON-style double-quoted strings (``["5","2000"]``, as the
    Dataverse documentation writes them) become OData strings: ``'5'``, with ``'`` doubled."""
    out, i, quoted, depth = [], 0, False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "@":
            match = ALIAS.match(text, i)
            name = match.group() if match else "@"
            if name not in aliases:
                raise bad_query(f"The parameter alias '{name}' is not defined in the query.")
            out.append(_substitute(aliases[name], {}))
            i += len(name)
            continue
        elif not quoted and char == '"' and depth > 0:
            value, i = _json_string(text, i)
            out.append("'" + value.replace("'", "''") + "'")
            continue
        elif not quoted and char in "[]":
            depth += 1 if char == "[" else -1
            char = "(" if char == "[" else ")"
        out.append(char)
        i += 1
    return "".join(out)


JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def _json_string(text: str, start: int) -> tuple[str, int]:
    """The JSON string literal at ``text[start]`` (a ``"``) and the index just after it."""
    match = JSON_STRING.match(text, start)
    if match is None:
        raise bad_query(f"Syntax error in $filter '{text}': unterminated string.")
    try:
        value = json.loads(match.group())
    except ValueError:
        raise bad_query(f"Syntax error in $filter '{text}': invalid string.") from None
    return value, match.end()


@dataclass
class Scope:
    """Where a name in the filter resolves: the entity set and how to read one of its columns."""

    entity_set: EntitySet
    column: Callable[[Property], str]


@dataclass
class Compiler:
    schema: Schema
    root: EntitySet
    params: list[Any] = field(default_factory=list)
    variables: dict[str, Scope] = field(default_factory=dict)
    depth: int = 0

    def compile(self, node: ast._Node) -> str:
        handler = getattr(self, f"visit_{type(node).__name__}", None)
        if handler is None:
            raise bad_query(f"The query node {type(node).__name__} is not supported in $filter.")
        return handler(node)

    # boolean structure -------------------------------------------------------------------
    def visit_BoolOp(self, node: ast.BoolOp) -> str:
        joiner = " AND " if isinstance(node.op, ast.And) else " OR "
        return f"({self.compile(node.left)}{joiner}{self.compile(node.right)})"

    def visit_UnaryOp(self, node: ast.UnaryOp) -> str:
        if not isinstance(node.op, ast.Not):
            raise bad_query("Arithmetic operators are not supported in $filter.")
        return f"(NOT {self.compile(node.operand)})"

    def visit_BinOp(self, node: ast.BinOp) -> str:
        raise bad_query(
            f"The arithmetic operator '{type(node.op).__name__.lower()}' is not supported."
        )

    def visit_Identifier(self, node: ast.Identifier) -> str:
        raise bad_query(f"The property '{node.name}' cannot be used as a condition on its own.")

    # comparisons ------------------------------------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> str:
        if isinstance(node.comparator, ast.In):
            raise bad_query(
                "The 'in' operator is not supported; use Microsoft.Dynamics.CRM.In instead."
            )
        left, right, comparator = node.left, node.right, node.comparator
        if isinstance(left, ast._Literal) and not isinstance(right, ast._Literal):
            left, right = right, left
            comparator = MIRRORED.get(type(comparator), comparator)
        operator, kind = COMPARATORS[type(comparator)]
        prop, column = self.operand(left)
        if isinstance(right, ast.Null):
            if isinstance(comparator, ast.Eq):
                return f"({column} IS NULL)"
            if isinstance(comparator, ast.NotEq):
                return f"({column} IS NOT NULL)"
            return "(NULL)"
        if isinstance(right, ast._Literal):
            prop.type.check_literal(prop, right, kind)
            return f"({column} {operator} {self.param(self.literal(prop, right))})"
        other, other_column = self.operand(right)
        if other.type.edm != prop.type.edm:
            raise bad_query(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{prop.type.edm}' and '{other.type.edm}' for operator kind '{kind}'."
            )
        return f"({column} {operator} {other_column})"

    def operand(self, node: ast._Node) -> tuple[Property, str]:
        """Resolve a property path (``name``, ``parentaccountid/name``, ``c/firstname``)."""
        if isinstance(node, ast.Identifier) and not node.namespace:
            scope, name = Scope(self.root, self.root_column), node.name
        elif isinstance(node, ast.Attribute):
            scope, name = self.scope(node.owner), node.attr
        elif isinstance(node, ast.Call):
            return self.unsupported_function(node)
        elif isinstance(node, ast.BinOp):
            raise bad_query(self.visit_BinOp(node))
        elif isinstance(node, ast._Literal):
            raise bad_query("A comparison must have a property on at least one side.")
        else:
            raise bad_query(f"The query node {type(node).__name__} is not supported in $filter.")
        if name in scope.entity_set.navigations or name in scope.entity_set.collections:
            raise bad_query(f"The navigation property '{name}' cannot be compared with a value.")
        prop = scope.entity_set.property(name)
        return prop, scope.column(prop)

    def scope(self, node: ast._Node) -> Scope:
        """The entity a path step leads to: a lambda variable or a single-valued navigation."""
        if isinstance(node, ast.Identifier) and node.name in self.variables:
            return self.variables[node.name]
        if isinstance(node, ast.Identifier):
            parent, name = Scope(self.root, self.root_column), node.name
        elif isinstance(node, ast.Attribute):
            parent, name = self.scope(node.owner), node.attr
        else:
            raise bad_query(f"The query node {type(node).__name__} is not supported in $filter.")
        navigation = parent.entity_set.navigations.get(name)
        if navigation is None:
            if name in parent.entity_set.collections:
                raise bad_query(
                    f"The collection-valued navigation property '{name}' can only be "
                    "filtered with any or all."
                )
            parent.entity_set.property(name)  # raises "Could not find a property"
            raise bad_query(f"The property '{name}' is not a navigation property.")
        target = self.schema[navigation.target]
        alias = self.alias()
        lookup = navigation.lookup
        link = f'{alias}."{target.key_property.column}" = {parent.column(lookup)}'
        if lookup.polymorphic:  # logical names are identifiers (checked by the schema)
            link += f" AND {parent.column(lookup.type_property())} = '{target.logical_name}'"

        def column(prop: Property) -> str:
            return f'(SELECT {alias}."{prop.column}" FROM "{target.name}" {alias} WHERE {link})'

        return Scope(target, column)

    @staticmethod
    def root_column(prop: Property) -> str:
        return f't0."{prop.column}"'

    def alias(self) -> str:
        self.depth += 1
        return f"t{self.depth}"

    def param(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    @staticmethod
    def literal(prop: Property, literal: ast._Literal) -> Any:
        """The stored form of a literal already checked against ``prop``'s type; a literal the
        grammar accepts but that names no value (``2021-02-30``) is a bad query."""
        try:
            return prop.type.from_literal(prop, literal)
        except (ValueError, OverflowError):
            raise bad_query(
                f"The literal '{literal.val}' is not a valid {literal_edm(literal)} value."
            ) from None

    # functions --------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> str:
        if node.func.namespace == CRM_NAMESPACE:
            return self.query_function(node)
        if node.func.namespace or node.func.name not in STRING_FUNCTIONS:
            self.unsupported_function(node)
        if len(node.args) != 2:
            raise bad_query(f"The function '{node.func.name}' takes two arguments.")
        prop, column = self.operand(node.args[0])
        value = node.args[1]
        if not isinstance(prop.type, StringType) or not isinstance(value, ast.String):
            raise bad_query(
                f"No function signature for the function with name '{node.func.name}' matches "
                "the specified arguments."
            )
        pattern = STRING_FUNCTIONS[node.func.name](value.val)
        return f"dataverse_like({column}, {self.param(pattern)})"

    def unsupported_function(self, node: ast.Call):
        name = node.func.full_name()
        raise bad_query(f"The '{name}' function is not supported.")

    def query_function(self, node: ast.Call) -> str:
        name = node.func.name
        handler = QUERY_FUNCTIONS.get(name)
        if handler is None:
            raise DataverseError(
                501,
                "0x80040216",
                f"The simulator does not implement the query function "
                f"Microsoft.Dynamics.CRM.{name}.",
            )
        arguments = {}
        for arg in node.args:
            if not isinstance(arg, ast.NamedParam):
                raise bad_query(f"Microsoft.Dynamics.CRM.{name} takes named parameters only.")
            arguments[arg.name.name] = arg.param
        property_name = arguments.pop("PropertyName", None)
        if not isinstance(property_name, ast.String):
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} needs a PropertyName string.")
        prop = self.root.property(property_name.val)
        return handler(self, name, prop, self.root_column(prop), arguments)

    def values(self, name: str, prop: Property, arguments: dict, count: int | None) -> list[Any]:
        """Typed values of ``PropertyValues``: strings or literals, converted to the property's
        type as Dataverse does."""
        node = arguments.get("PropertyValues")
        if node is None:
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} needs PropertyValues.")
        items = node.val if isinstance(node, ast.List) else [node]
        if count is not None and len(items) != count:
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} takes exactly {count} values.")
        if not items:
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} needs at least one value.")
        return [self.typed(prop, item) for item in items]

    def typed(self, prop: Property, item: ast._Node) -> Any:
        if isinstance(item, ast.String):
            return prop.type.from_text(prop, item.val)
        if isinstance(item, ast._Literal) and not isinstance(item, ast.Null):
            prop.type.check_literal(prop, item, "Equal")
            return self.literal(prop, item)
        raise bad_query(f"'{item}' is not a value for '{prop.name}'.")

    def membership(self, name, prop, column, arguments) -> str:
        values = self.values(name, prop, arguments, None)
        marks = ", ".join(self.param(v) for v in values)
        negation = "NOT " if name == "NotIn" else ""
        return f"({column} {negation}IN ({marks}))"

    def between(self, name, prop, column, arguments) -> str:
        low, high = self.values(name, prop, arguments, 2)
        negation = "NOT " if name == "NotBetween" else ""
        return f"({negation}({column} BETWEEN {self.param(low)} AND {self.param(high)}))"

    def on_date(self, name, prop, column, arguments) -> str:
        node = arguments.get("PropertyValue")
        if not isinstance(node, ast.String | ast.Date | ast.DateTime):
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} needs a PropertyValue date.")
        text = node.val if isinstance(node, ast.String) else str(node.val)
        try:
            day = dt.date.fromisoformat(text[:10])
        except ValueError:
            raise bad_query(f"'{text}' is not a date.") from None
        if isinstance(prop.type, DateType):
            start = end = day.isoformat()
            upper = "<="
        elif isinstance(prop.type, DateTimeOffsetType):
            start = prop.type.from_literal(prop, ast.Date(day.isoformat()))
            end = start + 86400
            upper = "<"
        else:
            raise bad_query(f"Microsoft.Dynamics.CRM.{name} needs a date or date-time property.")
        if name == "OnOrAfter":
            return f"({column} >= {self.param(start)})"
        if name == "OnOrBefore":
            return f"({column} {upper} {self.param(end)})"
        return f"({column} >= {self.param(start)} AND {column} {upper} {self.param(end)})"

    # collections -----------------------------------------------------------------------------
    def visit_CollectionLambda(self, node: ast.CollectionLambda) -> str:
        parent = (
            Scope(self.root, self.root_column)
            if isinstance(node.owner, ast.Identifier)
            else self.scope(node.owner.owner)
        )
        name = node.owner.name if isinstance(node.owner, ast.Identifier) else node.owner.attr
        collection = parent.entity_set.collections.get(name)
        if collection is None:
            raise bad_query(f"'{name}' is not a collection-valued navigation property.")
        child = self.schema[collection.child]
        alias = self.alias()
        lookup = collection.lookup
        link = f'{alias}."{lookup.column}" = {parent.column(parent.entity_set.key_property)}'
        if lookup.polymorphic:
            link += f""" AND {alias}."{lookup.type_column}" = '{parent.entity_set.logical_name}'"""
        if node.lambda_ is None:
            condition = "1"
        else:
            variable = node.lambda_.identifier.name
            self.variables[variable] = Scope(child, lambda p: f'{alias}."{p.column}"')
            try:
                condition = self.compile(node.lambda_.expression)
            finally:
                del self.variables[variable]
        if isinstance(node.operator, ast.All):
            return (
                f'(NOT EXISTS (SELECT 1 FROM "{child.name}" {alias} '
                f"WHERE {link} AND ({condition}) IS NOT 1))"
            )
        return f'(EXISTS (SELECT 1 FROM "{child.name}" {alias} WHERE {link} AND ({condition})))'


QUERY_FUNCTIONS = {
    "In": Compiler.membership,
    "NotIn": Compiler.membership,
    "Between": Compiler.between,
    "NotBetween": Compiler.between,
    "On": Compiler.on_date,
    "OnOrAfter": Compiler.on_date,
    "OnOrBefore": Compiler.on_date,
}


def compile_filter(
    schema: Schema, entity_set: EntitySet, text: str, aliases: dict[str, str] | None = None
) -> tuple[str, list[Any]]:
    """The ``WHERE`` clause (over the alias ``t0``) and its parameters for a ``$filter``."""
    compiler = Compiler(schema, entity_set)
    sql = compiler.compile(parse(text, aliases))
    return sql, compiler.params
