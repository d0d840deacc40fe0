"""System query options of a collection read: ``$select``, ``$orderby``, ``$top``, ``$expand``,
``$count``, paging and change tracking, checked the way Dataverse checks them."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import DataverseError, bad_query
from .schema import EntitySet, Navigation, Property, Schema

MAX_PAGE_SIZE = 5000
MAX_TOP = 2**31 - 1
MAX_VERSION = 2**63 - 1
DIGITS = re.compile(r"[0-9]+\Z")
PREFERENCE = re.compile(r'(?:[^,"]|"[^"]*")+')
SUPPORTED = {
    "$select",
    "$filter",
    "$orderby",
    "$top",
    "$expand",
    "$count",
    "$skiptoken",
    "$deltatoken",
}
NOT_IN_DATAVERSE = {"$skip", "$search", "$format"}
NOT_SIMULATED = {"$apply", "$levels", "$compute", "$index", "$schemaversion"}
TRACKING_FORBIDS = ("$filter", "$orderby", "$expand", "$top")


@dataclass
class Expand:
    navigation: Navigation
    target: EntitySet
    select: list[Property] | None


@dataclass
class Preferences:
    """The ``Prefer`` header, parsed."""

    max_page_size: int | None = None
    track_changes: bool = False
    return_representation: bool = False
    annotations: str | None = None
    continue_on_error: bool = False

    @classmethod
    def parse(cls, header: str | None) -> Preferences:
        """Preferences are separated by commas outside double quotes: ``odata.include-
        annotations="a,b"`` is one preference."""
        prefs = cls()
        for item in PREFERENCE.findall(header or ""):
            name, _, value = item.strip().partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "odata.maxpagesize" and DIGITS.match(value) and int(value) > 0:
                prefs.max_page_size = int(value)
            elif name == "odata.track-changes":
                prefs.track_changes = True
            elif name == "return" and value == "representation":
                prefs.return_representation = True
            elif name == "odata.include-annotations":
                prefs.annotations = value
            elif name == "odata.continue-on-error":
                prefs.continue_on_error = True
        return prefs

    def wants_annotation(self, name: str) -> bool:
        if not self.annotations:
            return False
        wanted = [a.strip() for a in self.annotations.split(",")]
        return (
            "*" in wanted
            or name in wanted
            or any(w.endswith(".*") and name.startswith(w[:-1]) for w in wanted)
        )


@dataclass
class ReadOptions:
    entity_set: EntitySet
    select: list[Property] | None = None
    filter: str | None = None
    orderby: list[tuple[Property, bool]] = field(default_factory=list)  # (property, descending)
    top: int | None = None
    expand: list[Expand] = field(default_factory=list)
    count: bool = False
    skiptoken: dict[str, Any] | None = None
    deltatoken: int | None = None
    aliases: dict[str, str] = field(default_factory=dict)


def parse_read_options(
    schema: Schema, entity_set: EntitySet, args: dict[str, str], tracking: bool = False
) -> ReadOptions:
    aliases = {k: v for k, v in args.items() if k.startswith("@")}
    for name in args:
        if name.startswith("@") or not name.startswith("$"):
            continue
        if name in NOT_IN_DATAVERSE:
            raise bad_query(f"The query parameter {name} is not supported.")
        if name in NOT_SIMULATED:
            raise DataverseError(
                501, "0x80040216", f"The simulator does not implement the query option {name}."
            )
        if name not in SUPPORTED:
            raise bad_query(f"The query parameter {name} is not supported.")
    if tracking or "$deltatoken" in args:
        for name in TRACKING_FORBIDS:
            if name in args:
                raise bad_query(
                    f'The "{name}" query parameter isn\'t supported when Change Tracking is '
                    "enabled."
                )
    options = ReadOptions(entity_set, aliases=aliases)
    if "$select" in args:
        options.select = parse_select(entity_set, args["$select"])
    options.filter = args.get("$filter") or None
    if "$orderby" in args:
        options.orderby = parse_orderby(entity_set, args["$orderby"], aliases)
    if "$top" in args:
        if not DIGITS.match(args["$top"]) or int(args["$top"]) > MAX_TOP:
            raise bad_query(f"Invalid value '{args['$top']}' for $top query option found.")
        options.top = int(args["$top"])
    if "$expand" in args:
        options.expand = parse_expand(schema, entity_set, args["$expand"])
    if "$count" in args:
        if args["$count"] not in ("true", "false"):
            raise bad_query(f"'{args['$count']}' is not a valid count option.")
        options.count = args["$count"] == "true"
    if "$skiptoken" in args:
        options.skiptoken = decode_token(args["$skiptoken"])
    if "$deltatoken" in args:
        token = args["$deltatoken"]
        if not DIGITS.match(token) or int(token) > MAX_VERSION:
            raise bad_query(f"The delta token '{token}' is not valid.")
        options.deltatoken = int(token)
    return options


def parse_select(entity_set: EntitySet, text: str) -> list[Property]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise bad_query(f"Syntax error in $select '{text}'.")
    return [entity_set.property(name) for name in names]


def parse_orderby(
    entity_set: EntitySet, text: str, aliases: dict[str, str]
) -> list[tuple[Property, bool]]:
    keys = []
    for item in text.split(","):
        words = item.split()
        if not 1 <= len(words) <= 2 or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise bad_query(f"Syntax error in $orderby '{text}'.")
        name = aliases.get(words[0], words[0]) if words[0].startswith("@") else words[0]
        keys.append((entity_set.property(name), len(words) == 2 and words[1] == "desc"))
    return keys


EXPAND_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*\Z", re.S)


def parse_expand(schema: Schema, entity_set: EntitySet, text: str) -> list[Expand]:
    expands = []
    for item in split_top_level(text):
        match = EXPAND_ITEM.match(item)
        if not match:
            raise bad_query(f"Syntax error in $expand '{text}'.")
        name, inner = match.groups()
        if name in entity_set.collections:
            raise DataverseError(
                501,
                "0x80040216",
                "The simulator does not implement $expand of collection-valued navigation "
                f"property '{name}'.",
            )
        navigation = entity_set.navigations.get(name)
        if navigation is None:
            entity_set.property(name)
            raise bad_query(
                f"Property '{name}' on type '{entity_set.qualified_type}' is not a "
                "navigation property or complex property. Only navigation "
                "properties can be expanded."
            )
        target = schema[navigation.target]
        select = None
        for option in split_top_level(inner or "", ";"):
            key, _, value = option.partition("=")
            if key.strip() != "$select":
                raise DataverseError(
                    501,
                    "0x80040216",
                    f"The simulator does not implement {key.strip()} inside $expand.",
                )
            select = parse_select(target, value)
        expands.append(Expand(navigation, target, select))
    return expands


def split_top_level(text: str, separator: str = ",") -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if current or parts:
        parts.append("".join(current))
    return [p for p in parts if p.strip()]


def encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
        assert isinstance(payload, dict) and isinstance(payload.get("after"), list)
        return payload
    except Exception:
        raise bad_query("The $skiptoken value is not valid.") from None
