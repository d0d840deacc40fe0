"""Instance annotations a read adds when ``Prefer: odata.include-annotations`` asks for them:
formatted values of option sets and lookups, and, on lookups, the logical name of the record
pointed at and the navigation property that leads there."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .options import Preferences
from .schema import EntitySet, Navigation, Property, Schema
from .store import Store

FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
ASSOCIATED_NAVIGATION = "Microsoft.Dynamics.CRM.associatednavigationproperty"


def navigation_of(lookup: Property, row: Any) -> Navigation | None:
    """The navigation property a lookup's value goes through: the only one, or for a
    polymorphic lookup the one whose target the row's type column names."""
    if row[lookup.column] is None:
        return None
    if not lookup.polymorphic:
        return lookup.targets[0]
    logical_name = row[lookup.type_column]
    return next(
        (n for n in lookup.targets if n.target_logical_name == logical_name),
        None,
    )


class Annotator:
    """The annotations of each row of a page, with one query per lookup target for the
    formatted values of lookups."""

    def __init__(self, schema: Schema, store: Store, prefs: Preferences):
        self.schema, self.store = schema, store
        self.formatted = prefs.wants_annotation(FORMATTED_VALUE)
        self.logical_name = prefs.wants_annotation(LOOKUP_LOGICAL_NAME)
        self.navigation = prefs.wants_annotation(ASSOCIATED_NAVIGATION)

    @property
    def active(self) -> bool:
        return self.formatted or self.logical_name or self.navigation

    def annotate(
        self, entity_set: EntitySet, rows: Sequence[Any], select: Sequence[Property] | None
    ) -> list[dict[str, dict[str, Any]]]:
        """For each row: property name -> {"<property>@<term>": value}."""
        result: list[dict[str, dict[str, Any]]] = [{} for _ in rows]
        if not self.active:
            return result
        # only lookups and option sets carry annotations: the other properties are not visited
        properties = [
            p
            for p in select or entity_set.properties.values()
            if p.is_lookup or (self.formatted and p.options)
        ]
        names = self.primary_names(rows, [p for p in properties if p.is_lookup])
        for row, notes in zip(rows, result, strict=True):
            for prop in properties:
                found = self.of(prop, row, names)
                if found:
                    notes[prop.name] = found
        return result

    def of(self, prop: Property, row: Any, names: dict[tuple[str, str], Any]) -> dict[str, Any]:
        value = row[prop.column]
        if value is None:
            return {}
        found: dict[str, Any] = {}
        if prop.is_lookup:
            navigation = navigation_of(prop, row)
            if navigation is None:
                return {}
            if self.formatted and (navigation.target, value) in names:
                found[f"{prop.name}@{FORMATTED_VALUE}"] = names[navigation.target, value]
            if self.navigation:
                found[f"{prop.name}@{ASSOCIATED_NAVIGATION}"] = navigation.name
            if self.logical_name:
                found[f"{prop.name}@{LOOKUP_LOGICAL_NAME}"] = navigation.target_logical_name
        elif self.formatted and prop.options:
            found[f"{prop.name}@{FORMATTED_VALUE}"] = prop.options.get(str(value))
        return found

    def primary_names(
        self, rows: Sequence[Any], lookups: list[Property]
    ) -> dict[tuple[str, str], Any]:
        """(target entity set, key) -> the target's primary name, for every lookup value."""
        if not self.formatted:
            return {}
        wanted: dict[str, set[str]] = defaultdict(set)
        for row in rows:
            for lookup in lookups:
                navigation = navigation_of(lookup, row)
                if navigation is not None:
                    wanted[navigation.target].add(row[lookup.column])
        names: dict[tuple[str, str], Any] = {}
        for target_name, keys in wanted.items():
            target = self.schema[target_name]
            if target.primary_name is None:
                continue
            name_column = target.properties[target.primary_name].column
            key_column = target.key_property.column
            for found in self.store.rows_in(target, key_column, keys):
                names[target_name, found[key_column]] = found[name_column]
        return names
