"""Mappings checked against the remote's ``$metadata`` (``manage.py cdms_check``): the entity
set, every mapped property and its type, lookups and their targets, and the key.

The system check (``migrator.checks``) sees only the model; this one asks the remote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdms_api.metadata import EntitySetInfo

from . import converters, remote

if TYPE_CHECKING:
    from .mapping import FieldMap
    from .models import CDMSModel

ERROR, WARNING = "error", "warning"

#: the Edm types each converter reads without loss
CONVERTIBLE: dict[type[converters.Converter], set[str]] = {
    converters.TextConverter: {"Edm.String"},
    converters.IntegerConverter: {"Edm.Int16", "Edm.Int32", "Edm.Int64", "Edm.Byte"},
    converters.DecimalConverter: {"Edm.Decimal", "Edm.Int32", "Edm.Int64"},
    converters.FloatConverter: {"Edm.Double", "Edm.Decimal", "Edm.Int32", "Edm.Int64"},
    converters.BooleanConverter: {"Edm.Boolean"},
    converters.DateTimeConverter: {"Edm.DateTimeOffset"},
    converters.DateConverter: {"Edm.Date", "Edm.DateTimeOffset"},
    converters.TimeConverter: {"Edm.String"},
    converters.UUIDConverter: {"Edm.Guid"},
    converters.OptionSet: {"Edm.Int32"},
}


@dataclass(frozen=True)
class Problem:
    model: str
    level: str  # ERROR: the mapping is wrong; WARNING: worth a look
    message: str

    def __str__(self) -> str:
        return f"{self.model}: {self.level}: {self.message}"


def check_models(
    models: list[type[CDMSModel]], metadata: dict[str, EntitySetInfo]
) -> list[Problem]:
    problems: list[Problem] = []
    for model in models:
        problems.extend(_check(model, metadata))
    return problems


def _check(model: type[CDMSModel], metadata: dict[str, EntitySetInfo]) -> list[Problem]:
    label, mapping = model._meta.label, model.cdms
    info = metadata.get(mapping.entity_set)
    if info is None:
        return [Problem(label, ERROR, f"the entity set '{mapping.entity_set}' is not in $metadata")]
    problems = [Problem(label, level, text) for level, text in _key(model, info)]
    for fm in mapping.fields:
        found = _lookup(fm, info, metadata) if fm.is_lookup else _property(fm, info)
        problems.extend(Problem(label, ERROR, f"{fm.field.name}: {text}") for text in found)
        if not found and not fm.is_lookup:
            problems.extend(
                Problem(label, WARNING, f"{fm.field.name}: {text}") for text in _fits(fm, info)
            )
    return problems


def _key(model: type[CDMSModel], info: EntitySetInfo) -> list[tuple[str, str]]:
    mapping = model.cdms
    declared = getattr(getattr(model, "CDMS", None), "key", None) or remote.setting("KEYS", {}).get(
        mapping.entity_set
    )
    if info.key != mapping.key:
        return [(ERROR, f"the key is '{info.key}' in $metadata, not '{mapping.key}'")]
    if not declared:
        return [
            (
                WARNING,
                f"the key '{mapping.key}' is guessed from the entity set's name, not read from "
                f"$metadata (which agrees): declare it as CDMS.key",
            )
        ]
    return []


def _property(fm: FieldMap, info: EntitySetInfo) -> list[str]:
    edm = info.properties.get(fm.remote)
    if edm is None:
        return [f"'{fm.remote}' is not a property of {info.entity_type}"]
    accepted = next(
        (types for kind, types in CONVERTIBLE.items() if type(fm.converter) is kind), None
    )
    if accepted is not None and edm not in accepted:
        field_type = type(fm.field).__name__
        return [f"'{fm.remote}' is {edm}, which does not convert to a {field_type}"]
    return []


def _fits(fm: FieldMap, info: EntitySetInfo) -> list[str]:
    remote_length = info.facets.get(fm.remote, {}).get("MaxLength", "")
    local_length = getattr(fm.field, "max_length", None)
    if remote_length.isdigit() and local_length and local_length < int(remote_length):
        return [f"'{fm.remote}' holds up to {remote_length} characters; the field, {local_length}"]
    return []


def _lookup(fm: FieldMap, info: EntitySetInfo, metadata: dict[str, EntitySetInfo]) -> list[str]:
    target = info.navigations.get(fm.navigation)
    if target is None:
        return [f"'{fm.navigation}' is not a navigation property of {info.entity_type}"]
    problems = []
    lookup = info.lookups.get(fm.navigation)
    if lookup is not None and lookup.value != fm.remote:
        problems.append(f"'{fm.navigation}' is read as '{lookup.value}', not '{fm.remote}'")
    target_info = metadata.get(fm.target.cdms.entity_set)
    if target_info is not None and target_info.entity_type != target:
        problems.append(
            f"'{fm.navigation}' points at {target}, not at {target_info.entity_type} "
            f"({fm.target._meta.label})"
        )
    return problems
