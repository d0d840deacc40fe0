"""Unbound functions: ``WhoAmI()`` and ``RetrieveTotalRecordCount(EntityNames=[...])``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request

from .errors import DataverseError, bad_query

if TYPE_CHECKING:
    from .app import Simulator

NAMESPACE = uuid.UUID("7c1f5a52-3a0d-4e47-8f55-2a8e5b0c9e31")
PARAMETER = re.compile(r"\s*EntityNames\s*=\s*(?P<value>.*?)\s*\Z", re.S)
NAME = re.compile(r"'((?:[^']|'')*)'|\"([^\"]*)\"")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def who_am_i(simulator: Simulator, request: Request, parameters: str | None) -> dict[str, Any]:
    """The caller: an application user per client id, in the one business unit and
    organisation the simulator has."""
    if parameters:
        raise bad_query("WhoAmI takes no parameters.")
    client = simulator.tokens.client_of(request.headers.get("Authorization")) or ""
    return {
        "@odata.context": f"{simulator.base_url(request)}$metadata#"
        "Microsoft.Dynamics.CRM.WhoAmIResponse",
        "BusinessUnitId": stable_id("businessunit"),
        "UserId": stable_id("systemuser", client),
        "OrganizationId": stable_id("organization"),
    }


def retrieve_total_record_count(
    simulator: Simulator, request: Request, parameters: str | None
) -> dict[str, Any]:
    """The number of records of each table named, by logical name (the simulator's count is
    exact and current; Dataverse's is a snapshot of the last 24 hours)."""
    match = PARAMETER.match(parameters or "")
    if match is None:
        raise bad_query("RetrieveTotalRecordCount needs the parameter EntityNames.")
    value = match.group("value")
    if value.startswith("@"):
        value = request.args.get(value, "")
    if not (value.startswith("[") and value.endswith("]")):
        raise bad_query(f"'{value}' is not a collection of entity logical names.")
    items = [item.strip() for item in value[1:-1].split(",")] if value[1:-1].strip() else []
    quoted = [NAME.fullmatch(item) for item in items]
    if not all(quoted):  # a logical name is a string: ['account'], never [account]
        raise bad_query(f"'{value}' is not a collection of entity logical names.")
    names = [
        single.replace("''", "'") if single or not double else double
        for single, double in (match.groups() for match in quoted)
    ]
    counts = []
    for name in names:
        entity_set = simulator.schema.by_logical_name.get(name)
        if entity_set is None:
            raise DataverseError(
                404,
                "0x80041102",
                f"The entity with a name = '{name}' with namemapping = 'Logical' was not found "
                "in the MetadataCache.",
            )
        counts.append(simulator.store.query(f'SELECT COUNT(*) FROM "{entity_set.name}"')[0][0])
    return {
        "@odata.context": f"{simulator.base_url(request)}$metadata#"
        "Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse",
        "EntityRecordCountCollection": {
            "Count": len(names),
            "IsReadOnly": False,
            "Keys": names,
            "Values": counts,
        },
    }


FUNCTIONS: dict[str, Callable[[Simulator, Request, str | None], dict[str, Any]]] = {
    "WhoAmI": who_am_i,
    "RetrieveTotalRecordCount": retrieve_total_record_count,
}
