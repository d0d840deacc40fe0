"""Record references in URLs: ``accounts(<guid>)``, ``accounts(accountid=<guid>)``, and the
alternate keys the schema declares: ``accounts(accountnumber='A-1')``,
``contacts(firstname='Joe',emailaddress1='joe@example.com')``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .errors import NOT_FOUND, DataverseError
from .schema import EntitySet, Property
from .types import parse_guid

KEY_PART = re.compile(
    r"\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>'(?:[^']|'')*'|[^,']+?)\s*(?:,|\Z)"
)
DUPLICATE_ENTITY_KEY = "0x80060892"


@dataclass
class KeyRef:
    """A record named by its primary key (``key``) or by an alternate key (``values``: the
    stored value of each of the key's properties)."""

    text: str
    key: str | None = None
    values: list[tuple[Property, Any]] = field(default_factory=list)

    def columns(self) -> dict[str, Any]:
        return {prop.column: value for prop, value in self.values}


def syntax_error(entity_set: EntitySet, text: str) -> DataverseError:
    return DataverseError(
        400, "0x80060888", f"Bad Request - Error in query syntax: '{entity_set.name}({text})'."
    )


def parse_key(entity_set: EntitySet, text: str) -> KeyRef:
    """The record a key segment names; 400 when it is neither a GUID nor a declared key."""
    if "=" not in text:
        return KeyRef(text, key=parse_guid(text, lambda: syntax_error(entity_set, text)))
    pairs: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = KEY_PART.match(text, position)
        if match is None or match.end() == position or match.group("name") in pairs:
            raise syntax_error(entity_set, text)
        pairs[match.group("name")] = match.group("value")
        position = match.end()
    if list(pairs) == [entity_set.key]:
        value = pairs[entity_set.key]
        return KeyRef(text, key=parse_guid(value, lambda: syntax_error(entity_set, text)))
    for properties in entity_set.alternate_keys.values():
        if {p.name for p in properties} == set(pairs):
            return KeyRef(
                text, values=[(p, _value(entity_set, p, pairs[p.name])) for p in properties]
            )
    raise DataverseError(
        400,
        "0x80060888",
        f"The key {sorted(pairs)} is not the primary key nor an alternate key of the entity "
        f"'{entity_set.logical_name}'.",
    )


def _value(entity_set: EntitySet, prop: Property, literal: str) -> Any:
    if literal.startswith("'"):
        if not literal.endswith("'") or len(literal) < 2:
            raise syntax_error(entity_set, literal)
        return prop.type.from_text(prop, literal[1:-1].replace("''", "'"))
    return prop.type.from_text(prop, literal)


def missing(entity_set: EntitySet, ref: KeyRef) -> DataverseError:
    if ref.key is not None:
        return DataverseError(
            404, NOT_FOUND, f"{entity_set.entity_type} With Id = {ref.key} Does Not Exist"
        )
    return DataverseError(
        404,
        NOT_FOUND,
        f"A record with the specified key values does not exist in {entity_set.logical_name} "
        "entity",
    )


def duplicate_entity_key(entity_set: EntitySet, name: str) -> DataverseError:
    """What Dataverse answers when a write would give two records the same alternate key."""
    columns = ", ".join(p.name for p in entity_set.alternate_keys[name])
    return DataverseError(
        412,
        DUPLICATE_ENTITY_KEY,
        f"A record that has the attribute values {columns} already exists. The entity key "
        f"{name} requires that this set of attributes contains unique values. Select unique "
        "values and try again.",
    )
