"""Dataverse functions the simulator serves: ``RetrieveTotalRecordCount``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import NOT_FOUND, DataverseError, bad_query
from .schema import Schema
from .store import Store

FUNCTION = re.compile(r"(?P<name>RetrieveTotalRecordCount)\((?P<arguments>[^()]*)\)\Z")
ARGUMENT = re.compile(r"\s*(?P<name>[A-Za-z]+)\s*=\s*(?P<value>.*?)\s*\Z", re.S)
LIST_ITEM = re.compile(r"""\s*(?:'([A-Za-z0-9_]+)'|"([A-Za-z0-9_]+)")\s*""")


def call_function(
    schema: Schema, store: Store, base_url: str, match: re.Match, args: Mapping[str, str]
) -> dict[str, Any]:
    argument = ARGUMENT.match(match.group("arguments"))
    if not argument or argument.group("name") != "EntityNames":
        raise bad_query(f"{match.group('name')} takes one parameter, EntityNames.")
    value = argument.group("value")
    if value.startswith("@"):
        value = args.get(value, "")
    return total_record_count(schema, store, base_url, _string_list(value))


def total_record_count(
    schema: Schema, store: Store, base_url: str, names: list[str]
) -> dict[str, Any]:
    """The records each table holds, by logical name. Dataverse answers a snapshot taken
    within the last 24 hours; the simulator answers the count now."""
    by_type = {entity_set.entity_type: entity_set for entity_set in schema.entity_sets.values()}
    values = []
    for name in names:
        if name not in by_type:
            raise DataverseError(
                404,
                NOT_FOUND,
                f"The entity with a name = '{name}' with namemapping = 'Logical' was not found "
                "in the MetadataCache.",
            )
        values.append(store.query(f'SELECT COUNT(*) FROM "{by_type[name].name}"')[0][0])
    return {
        "@odata.context": f"{base_url}$metadata#Microsoft.Dynamics.CRM."
        "RetrieveTotalRecordCountResponse",
        "EntityRecordCountCollection": {
            "Count": len(names),
            "IsReadOnly": False,
            "Keys": names,
            "Values": values,
        },
    }


def _string_list(text: str) -> list[str]:
    """``['account','contact']`` (or with double quotes, as JSON writes it)."""
    text = text.strip()
    items = text[1:-1].split(",") if text.startswith("[") and text.endswith("]") else None
    names = [LIST_ITEM.fullmatch(item) for item in items or []]
    if items is None or not all(names):
        raise bad_query(f"EntityNames must be a list of strings, not {text!r}.")
    return [name.group(1) or name.group(2) for name in names]
