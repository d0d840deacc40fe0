"""How records are named on the Web API: key properties, entity paths, lookup bindings."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

#: The annotation that names the table a lookup's value belongs to.
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
#: Reads ask for the logical name of the record each lookup points at, which a polymorphic
#: (customer) lookup needs to be understood.
LOOKUP_NAMES = f'odata.include-annotations="{LOOKUP_LOGICAL_NAME}"'
#: a write answers with the record as stored, its lookups annotated as reads' are
RETURN_RECORD = f"return=representation,{LOOKUP_NAMES}"


def default_logical_name(entity_set: str) -> str:
    """Dataverse's naming convention: a table's logical name is its entity set's singular,
    ``accounts`` -> ``account``, ``opportunities`` -> ``opportunity``."""
    return entity_set[:-3] + "y" if entity_set.endswith("ies") else entity_set.rstrip("s")


def default_key(entity_set: str) -> str:
    """Dataverse's naming convention: ``accounts`` -> ``accountid``, ``opportunities`` ->
    ``opportunityid``."""
    return f"{default_logical_name(entity_set)}id"


def entity_path(entity_set: str, key: str | uuid.UUID) -> str:
    return f"{entity_set}({uuid.UUID(str(key))})"


def bind(entity_set: str, key: str | uuid.UUID | None) -> str | None:
    """The ``@odata.bind`` value for a lookup to ``entity_set(key)`` (None clears it)."""
    return None if key is None else f"/{entity_path(entity_set, key)}"


def bound_key(binding: str) -> str:
    """The key an ``@odata.bind`` value names: ``/accounts(<key>)`` -> ``<key>``."""
    return binding.rsplit("(", 1)[-1].rstrip(")")


def new_key() -> str:
    """A key generated here, so that a create whose answer is lost can be read back."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class LookupValue:
    """A lookup's value as read: the key, and the logical name of its table (``account`` or
    ``contact`` for a customer lookup), or None when the remote did not say."""

    key: str
    logical_name: str | None


def lookup_value(record: dict[str, Any], attribute: str) -> LookupValue | None:
    """The lookup ``attribute`` (``_parentcustomerid_value``) of a record read by the client,
    with the table it points at; None when it is empty."""
    key = record.get(attribute)
    if key is None:
        return None
    return LookupValue(str(key), record.get(f"{attribute}@{LOOKUP_LOGICAL_NAME}"))
