"""The CSDL document served at ``$metadata``, built from the schema."""

from __future__ import annotations

from xml.etree import ElementTree as ET

from .schema import Schema

EDMX = "http://docs.oasis-open.org/odata/ns/edmx"
EDM = "http://docs.oasis-open.org/odata/ns/edm"


def csdl(schema: Schema) -> bytes:
    root = ET.Element("edmx:Edmx", {"Version": "4.0", "xmlns:edmx": EDMX})
    services = ET.SubElement(root, "edmx:DataServices")
    namespace = ET.SubElement(
        services, "Schema", {"Namespace": schema.namespace, "Alias": "mscrm", "xmlns": EDM}
    )
    ET.SubElement(namespace, "EntityType", {"Name": "crmbaseentity", "Abstract": "true"})
    container = ET.Element("EntityContainer", {"Name": "System"})
    for entity_set in schema.entity_sets.values():
        entity = ET.SubElement(
            namespace,
            "EntityType",
            {"Name": entity_set.entity_type, "BaseType": "mscrm.crmbaseentity"},
        )
        key = ET.SubElement(entity, "Key")
        ET.SubElement(key, "PropertyRef", {"Name": entity_set.key})
        for prop in entity_set.properties.values():
            attributes = {"Name": prop.name, "Type": prop.type.edm}
            if prop.max_length is not None:
                attributes["MaxLength"] = str(prop.max_length)
            if prop.type.edm == "Edm.Decimal":
                attributes.update(Precision=str(prop.precision), Scale=str(prop.scale))
            ET.SubElement(entity, "Property", attributes)
        bindings = ET.SubElement(
            container,
            "EntitySet",
            {"Name": entity_set.name, "EntityType": f"{schema.namespace}.{entity_set.entity_type}"},
        )
        for navigation in entity_set.navigations.values():
            target = schema[navigation.target]
            attributes = {"Name": navigation.name, "Type": f"mscrm.{target.entity_type}"}
            if navigation.collection:
                attributes["Partner"] = navigation.collection
            element = ET.SubElement(entity, "NavigationProperty", attributes)
            ET.SubElement(
                element,
                "ReferentialConstraint",
                {"Property": navigation.lookup.name, "ReferencedProperty": target.key},
            )
            ET.SubElement(
                bindings,
                "NavigationPropertyBinding",
                {"Path": navigation.name, "Target": target.name},
            )
        for collection in entity_set.collections.values():
            child = schema[collection.child]
            ET.SubElement(
                entity,
                "NavigationProperty",
                {
                    "Name": collection.name,
                    "Type": f"Collection(mscrm.{child.entity_type})",
                    "Partner": collection.navigation.name,
                },
            )
            ET.SubElement(
                bindings,
                "NavigationPropertyBinding",
                {"Path": collection.name, "Target": child.name},
            )
    namespace.append(container)
    return b'<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )
