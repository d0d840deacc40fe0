"""The entity sets the simulator serves, declared in a JSON or YAML schema file.

Besides the columns, a schema says what Dataverse's table definitions say: the primary name
column, the object type code, alternate keys, and the targets of each lookup. A lookup with more
than one target (a customer lookup such as ``contacts.parentcustomerid``) has one single-valued
navigation property per target and keeps the logical name of the record it points at in a
column of its own, ``<lookup>type``, as Dataverse does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import bad_query
from .system import BULK_MESSAGES, SYSTEM_SETS
from .types import TYPES, EdmType

DEFAULT_SCHEMA = Path(__file__).with_name("schema.json")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
FIRST_CUSTOM_OBJECT_TYPE_CODE = 10000


@dataclass
class Navigation:
    """A single-valued navigation property: ``parentcustomerid_account`` leads from a contact's
    ``parentcustomerid`` lookup to an account. ``collection`` is the one-to-many side on the
    target (``contact_customer_accounts``), when the schema names one."""

    name: str
    lookup: Property
    target: str
    collection: str | None = None
    target_logical_name: str = ""


@dataclass
class Property:
    """One attribute as the Web API shows it. A lookup ``parentaccountid`` is the attribute
    ``_parentaccountid_value``, one single-valued navigation property per target (``targets``)
    and the column ``parentaccountid``."""

    name: str
    type: EdmType
    column: str
    entity_type: str
    max_length: int | None = None
    precision: int = 19
    scale: int = 4
    options: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    targets: list[Navigation] = field(default_factory=list)
    type_name: str = ""

    @property
    def is_lookup(self) -> bool:
        return bool(self.targets)

    @property
    def polymorphic(self) -> bool:
        return len(self.targets) > 1

    @property
    def type_column(self) -> str:
        """The column that holds the logical name of the record a polymorphic lookup points
        at (Dataverse's ``parentcustomeridtype``)."""
        return f"{self.column}type"

    def type_property(self) -> Property:
        """The type column of a polymorphic lookup, as a property filters can read."""
        return Property(self.type_column, TYPES["String"], self.type_column, self.entity_type)


@dataclass
class CollectionNavigation:
    """The one-to-many side of a lookup: ``account_parent_account`` on accounts lists the
    accounts whose ``parentaccountid`` points at it."""

    name: str
    child: str
    navigation: Navigation

    @property
    def lookup(self) -> Property:
        return self.navigation.lookup


@dataclass
class EntitySet:
    name: str
    entity_type: str
    key: str
    properties: dict[str, Property]
    navigations: dict[str, Navigation] = field(default_factory=dict)
    collections: dict[str, CollectionNavigation] = field(default_factory=dict)
    primary_name: str | None = None
    object_type_code: int = 0
    alternate_keys: dict[str, list[Property]] = field(default_factory=dict)
    messages: tuple[str, ...] = BULK_MESSAGES
    read_only: bool = False
    change_tracking: bool = True

    @property
    def key_property(self) -> Property:
        return self.properties[self.key]

    @property
    def logical_name(self) -> str:
        return self.entity_type

    @property
    def qualified_type(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.entity_type}"

    @property
    def lookups(self) -> list[Property]:
        return [p for p in self.properties.values() if p.is_lookup]

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
        self.by_logical_name = {s.logical_name: s for s in entity_sets.values()}

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
        specs = {**document["entity_sets"]}
        specs.update((n, spec) for n, spec in SYSTEM_SETS.items() if n not in specs)
        sets = {
            name: _entity_set(name, spec, FIRST_CUSTOM_OBJECT_TYPE_CODE + number)
            for number, (name, spec) in enumerate(specs.items())
        }
        for entity_set in sets.values():
            for lookup in entity_set.lookups:
                for navigation in lookup.targets:
                    if navigation.target not in sets:
                        raise ValueError(
                            f"{entity_set.name}.{lookup.column}: unknown target {navigation.target}"
                        )
                    navigation.target_logical_name = sets[navigation.target].logical_name
                    if navigation.collection:
                        sets[navigation.target].collections[navigation.collection] = (
                            CollectionNavigation(navigation.collection, entity_set.name, navigation)
                        )
        return cls(sets, document.get("namespace", "Microsoft.Dynamics.CRM"))

    def __getitem__(self, name: str) -> EntitySet:
        return self.entity_sets[name]


def _entity_set(name: str, spec: dict[str, Any], default_code: int) -> EntitySet:
    entity_type = spec["entity_type"]
    if not IDENTIFIER.match(entity_type):
        raise ValueError(f"{name}: {entity_type!r} is not a valid logical name")
    properties: dict[str, Property] = {}
    navigations: dict[str, Navigation] = {}
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
        )
        if type_name == "Lookup":
            prop.targets = _targets(name, prop, options)
            navigations.update((n.name, n) for n in prop.targets)
        properties[prop.name] = prop
    if spec["key"] not in properties:
        raise ValueError(f"{name}: key {spec['key']} is not a property")
    versionnumber = Property("versionnumber", TYPES["Int64"], "versionnumber", entity_type)
    versionnumber.read_only = True
    properties["versionnumber"] = versionnumber
    tracking = spec.get("change_tracking", True)
    if not isinstance(tracking, bool):
        raise ValueError(f"{name}: change_tracking must be true or false")
    entity_set = EntitySet(
        name,
        entity_type,
        spec["key"],
        properties,
        navigations,
        primary_name=spec.get("primary_name"),
        object_type_code=spec.get("object_type_code", default_code),
        messages=tuple(spec.get("messages", BULK_MESSAGES)),
        read_only=spec.get("read_only", False),
        change_tracking=tracking,
    )
    if entity_set.primary_name is not None and entity_set.primary_name not in properties:
        raise ValueError(f"{name}: primary name {entity_set.primary_name} is not a property")
    for key_name, columns in spec.get("alternate_keys", {}).items():
        unknown = [c for c in columns if c not in properties]
        if unknown or not columns:
            raise ValueError(f"{name}: alternate key {key_name} names unknown columns {unknown}")
        entity_set.alternate_keys[key_name] = [properties[c] for c in columns]
    return entity_set


def _targets(name: str, lookup: Property, options: dict[str, Any]) -> list[Navigation]:
    """A lookup's navigation properties: ``"targets": {"accounts": {"navigation": ...,
    "collection_navigation": ...}, ...}``, or one ``"target"`` with optional ``"navigation"``
    and ``"collection_navigation"``."""
    if "targets" in options:
        targets = options["targets"]
        if not isinstance(targets, dict) or not targets:
            raise ValueError(f"{name}.{lookup.column}: targets must name at least one entity set")
        if not all(isinstance(spec, dict) and "navigation" in spec for spec in targets.values()):
            raise ValueError(f"{name}.{lookup.column}: each target needs its navigation property")
        return [
            Navigation(spec["navigation"], lookup, target, spec.get("collection_navigation"))
            for target, spec in targets.items()
        ]
    if "target" not in options:
        raise ValueError(f"{name}.{lookup.column}: a lookup needs a target")
    return [
        Navigation(
            options.get("navigation", lookup.column),
            lookup,
            options["target"],
            options.get("collection_navigation"),
        )
    ]
