"""The remote's ``$metadata`` (CSDL), reduced to what mapping checks need."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from .errors import MalformedResponse

EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
FACETS = ("MaxLength", "Precision", "Scale")


@dataclass
class LookupInfo:
    """A single-valued navigation property: the property its key is read from
    (``_parentaccountid_value``) and the collection on the other side, if named."""

    value: str
    partner: str | None = None


@dataclass
class EntitySetInfo:
    name: str
    entity_type: str
    key: str | None
    properties: dict[str, str] = field(default_factory=dict)  # name -> Edm type
    navigations: dict[str, str] = field(default_factory=dict)  # name -> target entity type
    facets: dict[str, dict[str, str]] = field(default_factory=dict)  # MaxLength, Precision...
    lookups: dict[str, LookupInfo] = field(default_factory=dict)  # navigation -> its value


def parse_csdl(document: bytes) -> dict[str, EntitySetInfo]:
    """Entity sets by name, with their key, property types and navigation targets."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as error:
        raise MalformedResponse(f"$metadata is not XML: {error}") from None
    types: dict[str, ET.Element] = {}
    aliases: dict[str, str] = {}
    for schema in root.iter(f"{EDM}Schema"):
        namespace = schema.get("Namespace", "")
        if schema.get("Alias"):
            aliases[schema.get("Alias")] = namespace
        for entity_type in schema.findall(f"{EDM}EntityType"):
            types[f"{namespace}.{entity_type.get('Name')}"] = entity_type

    def resolve(name: str) -> str:
        prefix, _, rest = name.rpartition(".")
        return f"{aliases.get(prefix, prefix)}.{rest}"

    def flattened(qualified: str) -> list[ET.Element]:
        """The type and its base types, derived first."""
        chain = []
        while qualified in types:
            chain.append(types[qualified])
            base = types[qualified].get("BaseType")
            qualified = resolve(base) if base else ""
        return chain

    sets: dict[str, EntitySetInfo] = {}
    for entity_set in root.iter(f"{EDM}EntitySet"):
        qualified = resolve(entity_set.get("EntityType", ""))
        info = EntitySetInfo(entity_set.get("Name", ""), qualified.rpartition(".")[2], None)
        for element in flattened(qualified):
            ref = element.find(f"{EDM}Key/{EDM}PropertyRef")
            if info.key is None and ref is not None:
                info.key = ref.get("Name")
            for prop in element.findall(f"{EDM}Property"):
                info.properties.setdefault(prop.get("Name"), prop.get("Type"))
                facets = {k: v for k, v in prop.attrib.items() if k in FACETS}
                if facets:
                    info.facets.setdefault(prop.get("Name"), facets)
            for nav in element.findall(f"{EDM}NavigationProperty"):
                constraint = nav.find(f"{EDM}ReferentialConstraint")
                if constraint is not None and constraint.get("Property"):
                    info.lookups.setdefault(
                        nav.get("Name"), LookupInfo(constraint.get("Property"), nav.get("Partner"))
                    )
                target = nav.get("Type", "")
                info.navigations.setdefault(
                    nav.get("Name"),
                    resolve(target).rpartition(".")[2]
                    if not target.startswith("Collection(")
                    else target,
                )
        sets[info.name] = info
    return sets


@dataclass
class Attribute:
    """A column as the table definitions describe it: its ``AttributeType`` (``String``,
    ``Picklist``, ``Lookup``, ``Customer``...), the logical names a lookup can point at, and
    an option set's labels by value."""

    name: str
    type: str
    targets: list[str] = field(default_factory=list)
    options: dict[int, str] = field(default_factory=dict)


@dataclass
class Table:
    """A table's definition, read from ``EntityDefinitions``."""

    logical_name: str
    entity_set: str
    key: str
    primary_name: str | None
    object_type_code: int | None
    attributes: dict[str, Attribute] = field(default_factory=dict)

    @property
    def qualified_type(self) -> str:
        return f"Microsoft.Dynamics.CRM.{self.logical_name}"


TABLE_SELECT = "LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ObjectTypeCode"


def parse_table(item: dict) -> Table:
    try:
        return Table(
            item["LogicalName"],
            item["EntitySetName"],
            item["PrimaryIdAttribute"],
            item.get("PrimaryNameAttribute"),
            item.get("ObjectTypeCode"),
        )
    except (KeyError, TypeError):
        raise MalformedResponse("a table definition without its names or key") from None


def parse_attributes(table: Table, attributes: list, lookups: list, picklists: list) -> None:
    """Fill ``table.attributes`` from the three attribute reads: all of them, the lookups with
    their targets, the option sets with their options."""
    try:
        for item in attributes:
            table.attributes[item["LogicalName"]] = Attribute(
                item["LogicalName"], item["AttributeType"]
            )
        for item in lookups:
            table.attributes[item["LogicalName"]].targets = list(item.get("Targets") or [])
        for item in picklists:
            table.attributes[item["LogicalName"]].options = {
                option["Value"]: _label(option.get("Label"))
                for option in (item.get("OptionSet") or {}).get("Options", [])
            }
    except (KeyError, TypeError, AttributeError):
        raise MalformedResponse("an attribute definition that cannot be read") from None


def _label(label: dict | None) -> str:
    return ((label or {}).get("UserLocalizedLabel") or {}).get("Label") or ""
