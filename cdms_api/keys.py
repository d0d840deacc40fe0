"""How records are named on the Web API: key properties, entity paths, lookup bindings."""

from __future__ import annotations

import uuid


def default_key(entity_set: str) -> str:
    """Dataverse's naming convention: ``accounts`` -> ``accountid``, ``opportunities`` ->
    ``opportunityid``."""
    singular = entity_set[:-3] + "y" if entity_set.endswith("ies") else entity_set.rstrip("s")
    return f"{singular}id"


def entity_path(entity_set: str, key: str | uuid.UUID) -> str:
    return f"{entity_set}({uuid.UUID(str(key))})"


def bind(entity_set: str, key: str | uuid.UUID | None) -> str | None:
    """The ``@odata.bind`` value for a lookup to ``entity_set(key)`` (None clears it)."""
    return None if key is None else f"/{entity_path(entity_set, key)}"


def new_key() -> str:
    """A key generated here, so that a create whose answer is lost can be read back."""
    return str(uuid.uuid4())
