"""Creates, updates, upserts and deletes, with Dataverse's validation, ETag preconditions,
``@odata.bind`` lookups (polymorphic ones included) and alternate keys."""

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
)
from .keys import KeyRef, duplicate_entity_key, missing, parse_key
from .reads import etag
from .schema import EntitySet, Navigation, Schema
from .store import Store
from .types import now_seconds, parse_guid

PAYLOAD = "0x80048d19"  # the OData reader rejected the request body
BIND_TARGET = re.compile(r"(?:.*/)?([A-Za-z_][A-Za-z0-9_]*)\((.*)\)\Z", re.S)


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


def read_only(entity_set: EntitySet, method: str) -> DataverseError:
    return DataverseError(
        405,
        "0x80060888",
        f"The requested resource does not support http method '{method}' on "
        f"'{entity_set.name}': its records are written by the system only.",
    )


def body_key(entity_set: EntitySet, body: Any) -> str | None:
    """The primary key a request body gives, if any (400 when it is not a GUID)."""
    raw = body.get(entity_set.key) if isinstance(body, dict) else None
    if raw is None:
        return None
    return parse_guid(
        raw,
        lambda: payload_error(
            entity_set, f"Cannot convert the literal '{raw}' to the expected type 'Edm.Guid'."
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
                navigation = entity_set.navigations.get(name[: -len("@odata.bind")])
                if navigation is None:
                    raise self.invalid_property(entity_set, name[: -len("@odata.bind")])
                self.set_lookup(values, navigation, self.bind_target(navigation.target, value))
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
                self.set_lookup(values, entity_set.navigations[name], None)
                continue
            if name.startswith("@") or "@" in name:
                continue  # instance annotations such as @odata.type are ignored
            prop = entity_set.properties.get(name)
            if prop is None or prop.is_lookup:
                raise self.invalid_property(entity_set, name)
            if prop.name == entity_set.key:
                if key is not None and body_key(entity_set, body) != key:
                    raise invalid_body("The key in the body does not match the key in the URL.")
                continue
            if prop.read_only:
                continue
            values[prop.column] = None if value is None else prop.type.from_json(prop, value)
        return values

    def set_lookup(self, values: dict[str, Any], navigation: Navigation, key: str | None) -> None:
        lookup = navigation.lookup
        values[lookup.column] = key
        if lookup.polymorphic:
            target = self.schema[navigation.target]
            values[lookup.type_column] = None if key is None else target.logical_name

    @staticmethod
    def invalid_property(entity_set: EntitySet, name: str) -> DataverseError:
        return DataverseError(
            400,
            PAYLOAD,
            f"Invalid property '{name}' was found in entity '{entity_set.qualified_type}'.",
        )

    def bind_target(self, target_name: str, reference: Any) -> str | None:
        """The key of the record an ``@odata.bind`` value names (by key or alternate key)."""
        if reference is None:
            return None
        match = BIND_TARGET.match(reference) if isinstance(reference, str) else None
        if not match or match.group(1) != target_name:
            raise invalid_body(
                f"The @odata.bind value '{reference}' does not reference a record of "
                f"'{target_name}'."
            )
        target = self.schema[target_name]
        ref = parse_key(target, match.group(2))
        row = self.find(target, ref)
        if row is None:
            raise missing(target, ref)
        return row[target.key_property.column]

    def find(self, entity_set: EntitySet, ref: KeyRef) -> Any:
        """The row a key reference names, or None."""
        if ref.key is not None:
            return self.store.get(entity_set, ref.key)
        rows = self.store.find(entity_set, ref.columns())
        return rows[0] if rows else None

    def check_keys(self, entity_set: EntitySet, key: str, row: dict[str, Any]) -> None:
        """Refuse a write that would give two records the same alternate key (parts that are
        null are not indexed)."""
        for name, properties in entity_set.alternate_keys.items():
            values = {p.column: row.get(p.column) for p in properties}
            if any(value is None for value in values.values()):
                continue
            if any(
                other[entity_set.key_property.column] != key
                for other in self.store.find(entity_set, values)
            ):
                raise duplicate_entity_key(entity_set, name)

    # writes --------------------------------------------------------------------------------
    def create(self, entity_set: EntitySet, body: Any) -> str:
        """POST: a new record, with the key of the body or a new one."""
        self.writable(entity_set, "POST")
        key = body_key(entity_set, body) or str(uuid.uuid4())
        with self.store.transaction():
            values = self.columns(entity_set, body, None)
            if self.store.get(entity_set, key) is not None:
                raise duplicate()
            self.insert(entity_set, key, values)
        return key

    def insert(self, entity_set: EntitySet, key: str, values: dict[str, Any]) -> None:
        now = now_seconds()
        for stamp in ("createdon", "modifiedon"):
            if stamp in entity_set.properties:
                values[stamp] = now
        if values.get("overriddencreatedon") is not None:  # a migrated record keeps its date
            values["createdon"] = values["overriddencreatedon"]
        self.check_keys(entity_set, key, values)
        self.store.insert(entity_set, key, values)

    def upsert(
        self,
        entity_set: EntitySet,
        ref: KeyRef,
        body: Any,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> tuple[str, bool]:
        """PATCH: update, or create when missing, as the precondition headers allow.
        Returns the record's key and whether it was created."""
        self.writable(entity_set, "PATCH")
        with self.store.transaction():
            values = self.columns(entity_set, body, ref.key)
            row = self.find(entity_set, ref)
            if row is None:
                if if_match is not None:
                    raise missing(entity_set, ref)
                key = ref.key or body_key(entity_set, body) or str(uuid.uuid4())
                self.insert(entity_set, key, {**values, **ref.columns()})
                return key, True
            if if_none_match == "*":
                raise duplicate()
            self.check_etag(row, if_match)
            key = row[entity_set.key_property.column]
            self.update(entity_set, key, row, values)
            return key, False

    def update(self, entity_set: EntitySet, key: str, row: Any, values: dict[str, Any]) -> None:
        if "modifiedon" in entity_set.properties:
            values["modifiedon"] = now_seconds()
        self.check_keys(entity_set, key, {**dict(row), **values})
        self.store.update(entity_set, key, values)

    def delete(self, entity_set: EntitySet, ref: KeyRef, if_match: str | None) -> None:
        self.writable(entity_set, "DELETE")
        with self.store.transaction():
            row = self.find(entity_set, ref)
            if row is None:
                raise missing(entity_set, ref)
            self.check_etag(row, if_match)
            key = row[entity_set.key_property.column]
            self.remove_links(entity_set, key)
            self.store.delete(entity_set, key)

    def remove_links(self, entity_set: EntitySet, key: str) -> None:
        """Clear the lookups that point at a deleted record (Dataverse's "Remove Link")."""
        for collection in entity_set.collections.values():
            child = self.schema[collection.child]
            lookup = collection.lookup
            match = {lookup.column: key}
            if lookup.polymorphic:
                match[lookup.type_column] = entity_set.logical_name
            for row in self.store.find(child, match):
                values = dict.fromkeys(match)
                if "modifiedon" in child.properties:
                    values["modifiedon"] = now_seconds()
                self.store.update(child, row[child.key_property.column], values)

    @staticmethod
    def writable(entity_set: EntitySet, method: str) -> None:
        if entity_set.read_only:
            raise read_only(entity_set, method)

    @staticmethod
    def check_etag(row: Any, if_match: str | None) -> None:
        if if_match is None or if_match.strip() == "*":
            return
        if etag(row) not in [tag.strip() for tag in if_match.split(",")]:
            raise stale()
