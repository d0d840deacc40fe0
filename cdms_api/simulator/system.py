"""The system tables the clients of Dataverse read to learn what a table supports:
``sdkmessages`` and ``sdkmessagefilters`` (which tables accept ``CreateMultiple``,
``UpdateMultiple`` and ``UpsertMultiple``). Their rows are generated from the schema."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import Schema
    from .writes import Writer

BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
NAMESPACE = uuid.UUID("0d5bd1b2-6c0e-4f6b-9a57-1f2f0f4c6a11")

SYSTEM_SETS: dict[str, dict[str, Any]] = {
    "sdkmessages": {
        "entity_type": "sdkmessage",
        "key": "sdkmessageid",
        "primary_name": "name",
        "object_type_code": 4606,
        "read_only": True,
        "messages": [],
        "properties": {
            "sdkmessageid": {"type": "Guid"},
            "name": {"type": "String", "max_length": 256},
        },
    },
    "sdkmessagefilters": {
        "entity_type": "sdkmessagefilter",
        "key": "sdkmessagefilterid",
        "object_type_code": 4607,
        "read_only": True,
        "messages": [],
        "properties": {
            "sdkmessagefilterid": {"type": "Guid"},
            "primaryobjecttypecode": {"type": "String", "max_length": 128},
            "secondaryobjecttypecode": {"type": "String", "max_length": 128},
            "isvisible": {"type": "Boolean"},
            "sdkmessageid": {
                "type": "Lookup",
                "target": "sdkmessages",
                "collection_navigation": "sdkmessageid_sdkmessagefilter",
            },
        },
    },
}


def system_key(*parts: str) -> str:
    """Stable keys, so that a message or filter keeps its id across resets."""
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def seed_system(schema: Schema, writer: Writer) -> None:
    """One ``sdkmessage`` per bulk message and one ``sdkmessagefilter`` per table and message
    the table supports."""
    messages, filters = schema["sdkmessages"], schema["sdkmessagefilters"]
    for message in BULK_MESSAGES:
        writer.insert(messages, system_key(message), {"name": message})
    for entity_set in schema.entity_sets.values():
        for message in entity_set.messages:
            writer.insert(
                filters,
                system_key(message, entity_set.logical_name),
                {
                    "primaryobjecttypecode": entity_set.logical_name,
                    "secondaryobjecttypecode": "none",
                    "isvisible": 1,
                    "sdkmessageid": system_key(message),
                },
            )
