"""The bulk actions bound to an entity set: ``CreateMultiple``, ``UpdateMultiple`` and
``UpsertMultiple``. Each is one request (one for the throttle, the fault rules and the
journal) and all or nothing: when one record fails, none is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from .errors import DataverseError, bad_query
from .keys import KeyRef, parse_key
from .responses import empty, json_response
from .schema import EntitySet
from .writes import BIND_TARGET, body_key, payload_error

if TYPE_CHECKING:
    from .app import Simulator

PREFIX = "Microsoft.Dynamics.CRM."


def targets(entity_set: EntitySet, action: str, body: Any) -> list[dict[str, Any]]:
    """The ``Targets`` of an action, each a record of this entity set's type."""
    if not isinstance(body, dict) or not isinstance(body.get("Targets"), list):
        raise payload_error(entity_set, f"{action} needs a 'Targets' collection of records.")
    if set(body) - {"Targets"}:
        raise payload_error(
            entity_set, f"{action} has no parameter '{sorted(set(body) - {'Targets'})[0]}'."
        )
    records = body["Targets"]
    for record in records:
        if not isinstance(record, dict):
            raise payload_error(entity_set, "Each item of 'Targets' must be a record object.")
        declared = record.get("@odata.type")
        if declared is None:
            raise payload_error(
                entity_set,
                "The @odata.type annotation is required with every item of 'Targets': "
                f"'{entity_set.qualified_type}'.",
            )
        if str(declared).lstrip("#") != entity_set.qualified_type:
            raise payload_error(
                entity_set,
                f"The items of 'Targets' of {entity_set.name}/{PREFIX}{action} must be of type "
                f"'{entity_set.qualified_type}', not '{declared}'.",
            )
    return records


def supported(entity_set: EntitySet, action: str) -> None:
    if action not in entity_set.messages:
        raise DataverseError(
            400,
            "0x80060888",
            f"The message {action} is not supported by the entity '{entity_set.logical_name}'.",
        )


def create_multiple(
    simulator: Simulator, request: Request, entity_set: EntitySet, body: Any
) -> Response:
    supported(entity_set, "CreateMultiple")
    records = targets(entity_set, "CreateMultiple", body)
    with simulator.store.transaction():
        ids = [simulator.writer.create(entity_set, record) for record in records]
    return json_response(
        {
            "@odata.context": f"{simulator.base_url(request)}$metadata#"
            f"{PREFIX}CreateMultipleResponse",
            "Ids": ids,
        }
    )


def update_multiple(
    simulator: Simulator, request: Request, entity_set: EntitySet, body: Any
) -> Response:
    """Each record names an existing one by its primary key; a missing one fails the lot."""
    return write_each(simulator, entity_set, "UpdateMultiple", body, if_match="*")


def upsert_multiple(
    simulator: Simulator, request: Request, entity_set: EntitySet, body: Any
) -> Response:
    """Each record is named by ``@odata.id`` (a key or alternate key) or by its primary key."""
    return write_each(simulator, entity_set, "UpsertMultiple", body, if_match=None)


def write_each(
    simulator: Simulator, entity_set: EntitySet, action: str, body: Any, if_match: str | None
) -> Response:
    """Upsert every target in one transaction (``If-Match: *``: update only); 204."""
    supported(entity_set, action)
    records = targets(entity_set, action, body)
    with simulator.store.transaction():
        for record in records:
            ref = reference(entity_set, action, record, by_address=if_match is None)
            simulator.writer.upsert(entity_set, ref, record, if_match=if_match)
    return empty(204)


def reference(
    entity_set: EntitySet, action: str, record: dict[str, Any], by_address: bool
) -> KeyRef:
    """The record a target names: by its key property, or (``by_address``) its ``@odata.id``."""
    address = record.get("@odata.id") if by_address else None
    if address is not None:
        match = BIND_TARGET.match(address) if isinstance(address, str) else None
        if match is None or match.group(1) != entity_set.name:
            raise bad_query(
                f"The @odata.id '{address}' does not name a record of {entity_set.name}."
            )
        return parse_key(entity_set, match.group(2))
    key = body_key(entity_set, record)
    if key is None:
        raise payload_error(entity_set, f"Each record of {action} needs its '{entity_set.key}'.")
    return KeyRef(key, key=key)


ACTIONS: dict[str, Callable[[Simulator, Request, EntitySet, Any], Response]] = {
    f"{PREFIX}CreateMultiple": create_multiple,
    f"{PREFIX}UpdateMultiple": update_multiple,
    f"{PREFIX}UpsertMultiple": upsert_multiple,
}
