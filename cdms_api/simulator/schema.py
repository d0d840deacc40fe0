"""The entity sets the simulator serves, declared in a JSON or YAML schema file."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import bad_query
from .types import TYPES, EdmType

DEFAULT_SCHEMA = Path(__file__).with_name("schema.json")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Property:
    """One attribute as the Web API shows it. A lookup ``parentaccountid`` is the attribute
    ``_parentaccountid_value``, the single-valued navigation property ``parentaccountid`` and
    the column ``parentaccountid``."""

    name: str
    type: EdmType
    column: str
    entity_type: str
    max_length: int | None = None
    precision: int = 19
    scale: int = 4
    options: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    navigation: str | None = None
    target: str | None = None
    type_name: str = ""


@dataclass
class CollectionNavigation:
    """The one-to-many side of a lookup: ``account_parent_account`` on accounts lists the
    accounts whose ``parentaccountid`` points at it."""

    name: str
    child: str
    lookup: Property


@dataclass
class EntitySet:
    name: str
    entity_type: str
    key: str
    properties: dict[str, Property]
    navigations: dict[str, Property] = field(default_factory=dict)
    collections: dict[str, CollectionNavigation] = field(default_factory=dict)
    change_tracking: bool = True

    @property
    def key_property(self) -> Property:
        return self.properties[self.key]

    @property
    def qualified_type(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.entity_type}"

    def property(self, name: str) -> Property:
        try:
            return self.properties[name]
        except KeyError:
            raise bad_query(
                f"Could not find a property named '{name}' on type '{self.qualified_type}'."
            ) from None


class Schema:
    def __init__(self, entity_sets: dict[str, EntitySet], namespace: str):
        self.entity_sets = entity_sets
        self.namespace = namespace

    @classmethod
    def load(cls, path: str | Path = DEFAULT_SCHEMA) -> Schema:
        text = Path(path).read_text(encoding="utf-8")
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            document = yaml.safe_load(text)
        else:
            document = json.loads(text)
        return cls.from_dict(document)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Schema:
        sets = {name: _entity_set(name, spec) for name, spec in document["entity_sets"].items()}
        for entity_set in sets.values():
            for prop in entity_set.properties.values():
                if prop.target is None:
                    continue
                if prop.target not in sets:
                    raise ValueError(f"{entity_set.name}.{prop.name}: unknown target {prop.target}")
                spec = document["entity_sets"][entity_set.name]["properties"][prop.column]
                if collection := spec.get("collection_navigation"):
                    sets[prop.target].collections[collection] = CollectionNavigation(
                        collection, entity_set.name, prop
                    )
        return cls(sets, document.get("namespace", "Microsoft.Dynamics.CRM"))

    def __getitem__(self, name: str) -> EntitySet:
        return self.entity_sets[name]


def _entity_set(name: str, spec: dict[str, Any]) -> EntitySet:
    entity_type = spec["entity_type"]
    properties: dict[str, Property] = {}
    navigations: dict[str, Property] = {}
    for column, options in spec["properties"].items():
        if not IDENTIFIER.match(column):
            raise ValueError(f"{name}: {column!r} is not a valid property name")
        type_name = options["type"]
        if type_name not in TYPES:
            raise ValueError(f"{name}.{column}: unknown type {type_name}")
        prop = Property(
            name=f"_{column}_value" if type_name == "Lookup" else column,
            type=TYPES[type_name],
            type_name=type_name,
            column=column,
            entity_type=entity_type,
            max_length=options.get("max_length"),
            precision=options.get("precision", 19),
            scale=options.get("scale", 4),
            options=options.get("options", {}),
            read_only=options.get("read_only", False),
            target=options.get("target"),
        )
        if type_name == "Lookup":
            prop.navigation = options.get("navigation", column)
            navigations[prop.navigation] = prop
        properties[prop.name] = prop
    if spec["key"] not in properties:
        raise ValueError(f"{name}: key {spec['key']} is not a property")
    versionnumber = Property("versionnumber", TYPES["Int64"], "versionnumber", entity_type)
    versionnumber.read_only = True
    properties["versionnumber"] = versionnumber
    tracking = spec.get("change_tracking", True)
    if not isinstance(tracking, bool):
        raise ValueError(f"{name}: change_tracking must be true or false")
    return EntitySet(
        name, entity_type, spec["key"], properties, navigations, change_tracking=tracking
    )
