"""Creates, updates, upserts and deletes, with Dataverse's validation, ETag preconditions and
``@odata.bind`` lookups."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from .errors import (
    DUPLICATE_KEY,
    PRECONDITION_FAILED,
    UNEXPECTED,
    DataverseError,
    invalid_body,
    not_found,
)
from .reads import etag
from .schema import EntitySet, Schema
from .store import Store
from .types import now_seconds, parse_guid

PAYLOAD = "0x80048d19"  # the OData reader rejected the request body
BIND_TARGET = re.compile(r"(?:.*/)?([A-Za-z_][A-Za-z0-9_]*)\(([^()]*)\)\Z")


def payload_error(entity_set: EntitySet, detail: str) -> DataverseError:
    """What Dataverse answers when its OData reader rejects a request body."""
    return DataverseError(
        400,
        PAYLOAD,
        f"Error identified in Payload provided by the user for Entity :'{entity_set.name}'"
        f" ----> InnerException : {detail}",
    )


def duplicate() -> DataverseError:
    return DataverseError(412, DUPLICATE_KEY, "A record with matching key values already exists.")


def stale() -> DataverseError:
    return DataverseError(
        412,
        PRECONDITION_FAILED,
        "The version of the existing record doesn't match the RowVersion property provided.",
    )


def parse_key(entity_set: EntitySet, text: str) -> str:
    return parse_guid(
        text,
        lambda: DataverseError(
            400, "0x80060888", f"Bad Request - Error in query syntax: '{entity_set.name}({text})'."
        ),
    )


@dataclass
class Writer:
    schema: Schema
    store: Store

    def columns(self, entity_set: EntitySet, body: Any, key: str | None) -> dict[str, Any]:
        """Validate a request body; return stored values by column (the key excluded)."""
        if not isinstance(body, dict):
            raise payload_error(
                entity_set, "The body must be a JSON object with the record's properties."
            )
        values: dict[str, Any] = {}
        for name, value in body.items():
            if name.endswith("@odata.bind"):
                navigation = name[: -len("@odata.bind")]
                lookup = entity_set.navigations.get(navigation)
                if lookup is None:
                    raise self.invalid_property(entity_set, navigation)
                values[lookup.column] = self.bind_target(lookup.target, value)
                continue
            if name in entity_set.navigations:
                # {"parentaccountid": null} disassociates, as "parentaccountid@odata.bind": null
                # does; a record there would be a deep insert, which the simulator lacks.
                if isinstance(value, dict):
                    raise DataverseError(
                        501,
                        UNEXPECTED,
                        f"The simulator does not implement deep insert through '{name}'.",
                    )
                if value is not None:
                    raise self.invalid_property(entity_set, name)
                values[entity_set.navigations[name].column] = None
                continue
            if name.startswith("@") or "@" in name:
                continue  # instance annotations such as @odata.type are ignored
            prop = entity_set.properties.get(name)
            if prop is None or prop.navigation is not None:
                raise self.invalid_property(entity_set, name)
            if prop.name == entity_set.key:
                if key is not None and value != key and parse_key(entity_set, str(value)) != key:
                    raise invalid_body("The key in the body does not match the key in the URL.")
                continue
            if prop.read_only:
                continue
            values[prop.column] = None if value is None else prop.type.from_json(prop, value)
        return values

    @staticmethod
    def invalid_property(entity_set: EntitySet, name: str) -> DataverseError:
        return DataverseError(
            400,
            PAYLOAD,
            f"Invalid property '{name}' was found in entity '{entity_set.qualified_type}'.",
        )

    def bind_target(self, target_name: str, reference: Any) -> str | None:
        if reference is None:
            return None
        match = BIND_TARGET.match(reference) if isinstance(reference, str) else None
        if not match or match.group(1) != target_name:
            raise invalid_body(
                f"The @odata.bind value '{reference}' does not reference a record of "
                f"'{target_name}'."
            )
        target = self.schema[target_name]
        key = parse_key(target, match.group(2))
        if self.store.get(target, key) is None:
            raise not_found(target.entity_type, key)
        return key

    def create(self, entity_set: EntitySet, body: Any) -> tuple[str, bool]:
        raw_key = body.get(entity_set.key) if isinstance(body, dict) else None
        key = (
            str(uuid.uuid4())
            if raw_key is None
            else parse_guid(
                raw_key,
                lambda: payload_error(
                    entity_set,
                    f"Cannot convert the literal '{raw_key}' to the expected type 'Edm.Guid'.",
                ),
            )
        )
        with self.store.transaction():
            values = self.columns(entity_set, body, None)
            if self.store.get(entity_set, key) is not None:
                raise duplicate()
            self.insert(entity_set, key, values)
        return key, True

    def insert(self, entity_set: EntitySet, key: str, values: dict[str, Any]) -> None:
        now = now_seconds()
        for stamp in ("createdon", "modifiedon"):
            if stamp in entity_set.properties:
                values[stamp] = now
        self.store.insert(entity_set, key, values)

    def upsert(
        self,
        entity_set: EntitySet,
        key: str,
        body: Any,
        if_match: str | None,
        if_none_match: str | None,
    ) -> bool:
        """PATCH: update, or create when missing, as the precondition headers allow.
        Returns whether the record was created."""
        with self.store.transaction():
            values = self.columns(entity_set, body, key)
            row = self.store.get(entity_set, key)
            if row is None:
                if if_match is not None:
                    raise not_found(entity_set.entity_type, key)
                self.insert(entity_set, key, values)
                return True
            if if_none_match == "*":
                raise duplicate()
            self.check_etag(row, if_match)
            if "modifiedon" in entity_set.properties:
                values["modifiedon"] = now_seconds()
            self.store.update(entity_set, key, values)
            return False

    def delete(self, entity_set: EntitySet, key: str, if_match: str | None) -> None:
        with self.store.transaction():
            row = self.store.get(entity_set, key)
            if row is None:
                raise not_found(entity_set.entity_type, key)
            self.check_etag(row, if_match)
            self.remove_links(entity_set, key)
            self.store.delete(entity_set, key)

    def remove_links(self, entity_set: EntitySet, key: str) -> None:
        """Clear the lookups that point at a deleted record (Dataverse's "Remove Link")."""
        for collection in entity_set.collections.values():
            child = self.schema[collection.child]
            column = collection.lookup.column
            rows = self.store.query(
                f'SELECT "{child.key_property.column}" FROM "{child.name}" WHERE "{column}" = ?',
                (key,),
            )
            for (child_key,) in rows:
                values = {column: None}
                if "modifiedon" in child.properties:
                    values["modifiedon"] = now_seconds()
                self.store.update(child, child_key, values)

    @staticmethod
    def check_etag(row: Any, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        if etag(row) not in [tag.strip() for tag in if_match.split(",")]:
            raise stale()
