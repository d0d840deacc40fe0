"""What the translator reads a lookup's columns as: remote property paths, and the values the
remote compares them with."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models.expressions import Col

from cdms_api import odata

from . import local
from .converters import DateTimeConverter
from .mapping import FieldMap, Mapping


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
    def reads_null_as_default(self) -> bool:
        """A field that cannot be null locally and holds its default where the remote has
        null (``loader.values_of_each``)."""
        return (
            self.kind == "field"
            and not self.field.null
            and self.field.has_default()
            and self.mapping.to_python(None) is None
        )

    @property
    def is_plain(self) -> bool:
        """A mapped value column: not a key, not a lookup."""
        return self.kind == "field" and not self.mapping.is_lookup

    def beyond_range(self, value: Any) -> int:
        """-1 below the lowest value the remote type holds, 1 above the highest, else 0."""
        bounds = self.mapping.converter.remote_range(self.field) if self.is_plain else None
        if bounds is None:
            return 0
        return -1 if value < bounds[0] else int(value > bounds[1])

    def remote_values(self, values: list[Any]) -> list[Any]:
        """Values as the remote compares them; rows that exist only locally drop out."""
        if self.kind == "key":
            return [as_uuid(v) for v in values if v is not None]
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
    keys = local.rows(model).filter(pk__in=ids).values_list("cdms_pk", flat=True)
    return [k for k in keys if k is not None]


def mapping_of(model: type[models.Model]) -> Mapping:
    mapping = getattr(model, "cdms", None)
    if not isinstance(mapping, Mapping):
        raise Unsupported(f"a condition on {model.__name__}, which is not synced")
    return mapping


def field_map(mapping: Mapping, name: str) -> FieldMap | None:
    """A mapped field, or ``cdms_modified``: the remote ``modifiedon``."""
    if name == "cdms_modified":
        return FieldMap(mapping.model._meta.get_field(name), "modifiedon", DateTimeConverter())
    return mapping.get(name)


def column_of(expression: Any) -> Col:
    if isinstance(expression, Col):
        return expression
    name = getattr(expression, "lookup_name", None) or type(expression).__name__
    raise Unsupported(f"'{name}' has no Dataverse form")


def base_column(expression: Any) -> Any:
    """The column under transforms (``created__year`` -> ``created``)."""
    while not isinstance(expression, Col) and hasattr(expression, "lhs"):
        expression = expression.lhs
    return expression


def empty_text(operand: Operand) -> odata.Node:
    """Remote values of a text that reads as "" locally: null, or '' as written by others."""
    return odata.Prop(operand.path).is_null() | odata.Prop(operand.path).eq("")


def as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
