"""Table definitions, as ``EntityDefinitions`` serves them: the tables, their attributes (with
the typed casts such as ``Microsoft.Dynamics.CRM.PicklistAttributeMetadata`` and the option sets
they expand to), alternate keys and relationships, all generated from the schema.

Supported: ``$select``, and ``$filter`` with ``eq``/``ne``/``and``/``or``/``not`` on the
definitions' own properties; ``$expand=OptionSet`` on option-set attributes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from odata_query import ast
from werkzeug.wrappers import Request

from .errors import DataverseError, bad_query, no_segment
from .filters import parse
from .options import split_top_level
from .schema import EntitySet, Navigation, Property, Schema

NAMESPACE = uuid.UUID("9a0f4f5e-6d55-4c8e-a4c2-52a1f3b7c3d1")
CRM = "Microsoft.Dynamics.CRM."
LANGUAGE = 1033
NAMED = re.compile(r"\s*LogicalName\s*=\s*'(?P<name>(?:[^']|'')*)'\s*\Z")
ATTRIBUTE_TYPES = {
    # schema type: (AttributeType, metadata type)
    "String": ("String", "StringAttributeMetadata"),
    "Memo": ("Memo", "MemoAttributeMetadata"),
    "Guid": ("Uniqueidentifier", "AttributeMetadata"),
    "Int32": ("Integer", "IntegerAttributeMetadata"),
    "Int64": ("BigInt", "BigIntAttributeMetadata"),
    "Picklist": ("Picklist", "PicklistAttributeMetadata"),
    "Decimal": ("Decimal", "DecimalAttributeMetadata"),
    "Money": ("Money", "MoneyAttributeMetadata"),
    "Double": ("Double", "DoubleAttributeMetadata"),
    "Boolean": ("Boolean", "BooleanAttributeMetadata"),
    "Date": ("DateTime", "DateTimeAttributeMetadata"),
    "DateTimeOffset": ("DateTime", "DateTimeAttributeMetadata"),
    "Lookup": ("Lookup", "LookupAttributeMetadata"),
}
CASTS = {metadata_type for _, metadata_type in ATTRIBUTE_TYPES.values()}


def metadata_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


def label(text: str, *parts: str) -> dict[str, Any]:
    localized = {
        "Label": text,
        "LanguageCode": LANGUAGE,
        "IsManaged": False,
        "MetadataId": metadata_id("label", *parts),
        "HasChanged": None,
    }
    return {"LocalizedLabels": [localized], "UserLocalizedLabel": localized}


def schema_name(logical_name: str) -> str:
    return logical_name[:1].upper() + logical_name[1:]


# definitions ------------------------------------------------------------------------------------
def entity(entity_set: EntitySet) -> dict[str, Any]:
    logical = entity_set.logical_name
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.EntityMetadata",
        "MetadataId": metadata_id("entity", logical),
        "LogicalName": logical,
        "SchemaName": schema_name(logical),
        "EntitySetName": entity_set.name,
        "LogicalCollectionName": entity_set.name,
        "CollectionSchemaName": schema_name(entity_set.name),
        "ObjectTypeCode": entity_set.object_type_code,
        "PrimaryIdAttribute": entity_set.key,
        "PrimaryNameAttribute": entity_set.primary_name,
        "PrimaryImageAttribute": None,
        "DisplayName": label(schema_name(logical), "entity", logical),
        "DisplayCollectionName": label(schema_name(entity_set.name), "collection", logical),
        "IsCustomEntity": "_" in logical,
        "IsActivity": entity_set.key == "activityid",
        "IsIntersect": False,
        "ChangeTrackingEnabled": True,
        "CanCreateAttributes": {"Value": False, "CanBeChanged": False},
        "TableType": "Standard",
    }


def attribute(entity_set: EntitySet, prop: Property) -> dict[str, Any]:
    logical = prop.column
    kind, metadata_type = ATTRIBUTE_TYPES[prop.type_name or "Int64"]
    if prop.polymorphic and {n.target_logical_name for n in prop.targets} == {"account", "contact"}:
        kind = "Customer"
    item: dict[str, Any] = {
        "@odata.type": f"#{CRM}{metadata_type}",
        "MetadataId": metadata_id("attribute", entity_set.logical_name, logical),
        "LogicalName": logical,
        "SchemaName": schema_name(logical),
        "EntityLogicalName": entity_set.logical_name,
        "AttributeType": kind,
        "AttributeTypeName": {"Value": f"{kind}Type"},
        "AttributeOf": None,
        "IsPrimaryId": prop.name == entity_set.key,
        "IsPrimaryName": logical == entity_set.primary_name,
        "IsValidForCreate": not prop.read_only,
        "IsValidForUpdate": not prop.read_only and prop.name != entity_set.key,
        "IsValidForRead": True,
        "IsCustomAttribute": "_" in logical,
        "DisplayName": label(schema_name(logical), "attribute", entity_set.logical_name, logical),
        "RequiredLevel": {"Value": "SystemRequired" if prop.name == entity_set.key else "None"},
    }
    if prop.max_length is not None:
        item["MaxLength"] = prop.max_length
    if metadata_type in ("DecimalAttributeMetadata", "MoneyAttributeMetadata"):
        item["Precision"] = prop.scale
    if prop.type_name == "Date":
        item["Format"] = "DateOnly"
        item["DateTimeBehavior"] = {"Value": "DateOnly"}
    if prop.type_name == "DateTimeOffset":
        item["Format"] = "DateAndTime"
        item["DateTimeBehavior"] = {"Value": "UserLocal"}
    if prop.is_lookup:
        item["Targets"] = [n.target_logical_name for n in prop.targets]
    return item


def option_set(entity_set: EntitySet, prop: Property) -> dict[str, Any]:
    parts = (entity_set.logical_name, prop.column)
    return {
        "MetadataId": metadata_id("optionset", *parts),
        "Name": f"{entity_set.logical_name}_{prop.column}",
        "IsGlobal": False,
        "OptionSetType": "Picklist",
        "Options": [
            {"Value": int(value), "Label": label(text, "option", *parts, value), "Color": None}
            for value, text in prop.options.items()
        ],
    }


def key(entity_set: EntitySet, name: str, properties: list[Property]) -> dict[str, Any]:
    return {
        "MetadataId": metadata_id("key", entity_set.logical_name, name),
        "LogicalName": name.lower(),
        "SchemaName": name,
        "EntityLogicalName": entity_set.logical_name,
        "KeyAttributes": [p.column for p in properties],
        "EntityKeyIndexStatus": "Active",
        "DisplayName": label(name, "key", entity_set.logical_name, name),
    }


def relationship(schema: Schema, child: EntitySet, navigation: Navigation) -> dict[str, Any]:
    """The one-to-many relationship behind a lookup's navigation property."""
    target = schema[navigation.target]
    name = navigation.collection or f"{target.logical_name}_{navigation.name}"
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "MetadataId": metadata_id("relationship", name),
        "SchemaName": name,
        "RelationshipType": "OneToManyRelationship",
        "IsCustomRelationship": False,
        "ReferencedEntity": target.logical_name,
        "ReferencedAttribute": target.key,
        "ReferencingEntity": child.logical_name,
        "ReferencingAttribute": navigation.lookup.column,
        "ReferencedEntityNavigationPropertyName": navigation.collection,
        "ReferencingEntityNavigationPropertyName": navigation.name,
        "CascadeConfiguration": {
            "Assign": "NoCascade",
            "Delete": "RemoveLink",
            "Merge": "NoCascade",
            "Reparent": "NoCascade",
            "Share": "NoCascade",
            "Unshare": "NoCascade",
        },
    }


# answering ------------------------------------------------------------------------------------
def answer(
    schema: Schema, base: str, key_text: str | None, rest: str | None, request: Request
) -> dict[str, Any]:
    """``EntityDefinitions[(key)][/Attributes[/cast][(key)]|/Keys|/...Relationships]``."""
    args = request.args.to_dict()
    if key_text is None:
        if rest is not None:
            raise no_segment(rest.split("/")[0])
        items = [entity(s) for s in schema.entity_sets.values()]
        return collection(f"{base}$metadata#EntityDefinitions", items, args)
    entity_set = find_entity(schema, key_text)
    context = f"{base}$metadata#EntityDefinitions({entity(entity_set)['MetadataId']})"
    if rest is None:
        return single(f"{base}$metadata#EntityDefinitions/$entity", entity(entity_set), args)
    segment, _, cast = rest.partition("/")
    match = re.fullmatch(r"(?P<name>[A-Za-z]+)(?:\((?P<key>[^()]*)\))?", segment)
    if match is None:
        raise no_segment(segment)
    name, item_key = match.group("name", "key")
    if name == "Attributes":
        return attributes(entity_set, f"{context}/Attributes", item_key, cast, args)
    listings: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "Keys": lambda: [key(entity_set, n, p) for n, p in entity_set.alternate_keys.items()],
        "ManyToOneRelationships": lambda: [
            relationship(schema, entity_set, n) for n in entity_set.navigations.values()
        ],
        "OneToManyRelationships": lambda: [
            relationship(schema, schema[c.child], c.navigation)
            for c in entity_set.collections.values()
        ],
        "ManyToManyRelationships": list,
    }
    if name not in listings or item_key is not None or cast:
        raise no_segment(segment if name not in listings else rest)
    return collection(f"{context}/{name}", listings[name](), args)


def find_entity(schema: Schema, key_text: str) -> EntitySet:
    named = NAMED.match(key_text)
    for entity_set in schema.entity_sets.values():
        if named and entity_set.logical_name == named.group("name").replace("''", "'"):
            return entity_set
        if not named and entity(entity_set)["MetadataId"] == key_text.strip().lower():
            return entity_set
    name = named.group("name") if named else key_text
    raise DataverseError(
        404,
        "0x80041102",
        f"The entity with a name = '{name}' with namemapping = 'Logical' was not found in the "
        "MetadataCache.",
    )


def attributes(
    entity_set: EntitySet, context: str, item_key: str | None, cast: str, args: dict[str, str]
) -> dict[str, Any]:
    if cast and (not cast.startswith(CRM) or cast[len(CRM) :] not in CASTS):
        raise bad_query(f"The type '{cast}' is not an attribute metadata type.")
    wanted = cast[len(CRM) :] if cast else None
    chosen = [
        prop
        for prop in entity_set.properties.values()
        if wanted is None or ATTRIBUTE_TYPES[prop.type_name or "Int64"][1] == wanted
    ]
    if item_key is not None:
        named = NAMED.match(item_key)
        chosen = [
            p
            for p in chosen
            if (named and p.column == named.group("name"))
            or (not named and attribute(entity_set, p)["MetadataId"] == item_key.strip().lower())
        ]
        if not chosen:
            raise DataverseError(
                404,
                "0x80040217",
                f"Could not find attribute '{item_key}' on entity '{entity_set.logical_name}'.",
            )
    expand_options = option_set_expansion(args.pop("$expand", None))
    items = []
    for prop in chosen:
        item = attribute(entity_set, prop)
        if expand_options is not None:
            if not prop.options:
                raise bad_query(
                    f"Could not find a property named 'OptionSet' on type '{item['@odata.type']}'."
                )
            item["OptionSet"] = select(option_set(entity_set, prop), expand_options)
        items.append(item)
    suffix = f"/{cast}" if cast else ""
    if item_key is not None:
        return single(f"{context}{suffix}/$entity", items[0], args, keep=("OptionSet",))
    return collection(f"{context}{suffix}", items, args, keep=("OptionSet",))


def option_set_expansion(text: str | None) -> list[str] | None:
    """``OptionSet`` or ``OptionSet($select=Options)``: the properties to keep (empty: all)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*OptionSet\s*(?:\((?P<inner>.*)\))?\s*", text, re.S)
    if match is None:
        raise DataverseError(
            501, "0x80040216", f"The simulator does not implement $expand={text} on attributes."
        )
    inner = match.group("inner") or ""
    names: list[str] = []
    for option in split_top_level(inner, ";"):
        name, _, value = option.partition("=")
        if name.strip() != "$select":
            raise DataverseError(
                501, "0x80040216", f"The simulator does not implement {name.strip()} in $expand."
            )
        names = [n.strip() for n in value.split(",")]
    return names


def select(item: dict[str, Any], names: list[str], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """The item with only the ``$select``ed properties (and its type and MetadataId, which
    Dataverse always returns)."""
    if not names:
        return item
    unknown = [n for n in names if n not in item]
    if unknown:
        raise unknown_property(unknown[0], item)
    chosen = {"@odata.type", "MetadataId", *names, *keep}
    return {name: value for name, value in item.items() if name in chosen}


def unknown_property(name: str, item: dict[str, Any]) -> DataverseError:
    kind = str(item.get("@odata.type", "#Microsoft.Dynamics.CRM.OptionSetMetadata")).lstrip("#")
    return bad_query(f"Could not find a property named '{name}' on type '{kind}'.")


def single(
    context: str, item: dict[str, Any], args: dict[str, str], keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    refuse_unknown(args, {"$select"})
    names = _names(args.get("$select"))
    return {"@odata.context": context, **select(item, names, keep)}


def collection(
    context: str, items: list[dict[str, Any]], args: dict[str, str], keep: tuple[str, ...] = ()
) -> dict[str, Any]:
    refuse_unknown(args, {"$select", "$filter"})
    if "$filter" in args:
        node = parse(args["$filter"])
        items = [item for item in items if truth(node, item)]
    names = _names(args.get("$select"))
    return {"@odata.context": context, "value": [select(i, names, keep) for i in items]}


def refuse_unknown(args: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(name for name in args if name.startswith("$") and name not in allowed)
    if unknown:
        raise bad_query(f"The query parameter {unknown[0]} is not supported on table definitions.")


def _names(text: str | None) -> list[str]:
    if text is None:
        return []
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise bad_query(f"Syntax error in $select '{text}'.")
    return names


# $filter on definitions ----------------------------------------------------------------------
COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
}


def truth(node: ast._Node, item: dict[str, Any]) -> bool:
    """Whether a definition matches a ``$filter`` (exact comparison of its properties)."""
    if isinstance(node, ast.BoolOp):
        left, right = truth(node.left, item), truth(node.right, item)
        return (left and right) if isinstance(node.op, ast.And) else (left or right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not truth(node.operand, item)
    if isinstance(node, ast.Compare) and type(node.comparator) in COMPARE:
        left, right = node.left, node.right
        if isinstance(left, ast._Literal):
            left, right = right, left
        if isinstance(left, ast.Identifier) and isinstance(right, ast._Literal):
            if left.name not in item:
                raise unknown_property(left.name, item)
            value = None if isinstance(right, ast.Null) else right.py_val
            return COMPARE[type(node.comparator)](item[left.name], value)
    raise DataverseError(
        501,
        "0x80040216",
        "The simulator filters table definitions with eq, ne, and, or and not on their "
        "properties only.",
    )
