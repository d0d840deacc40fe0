"""How a ``CDMSModel`` maps onto a remote entity set, read from its inner ``class CDMS``::

class CDMS:
    entity_set = "accounts"
    key = "accountid"                 # optional: Dataverse's convention by default
    logical_name = "account"          # optional: likewise (what lookups to it are annotated)
    fields = {
        "name": "name",               # model field -> remote property
        "parent": "parentaccountid",  # a ForeignKey -> the lookup's navigation property
        # a lookup with several targets (a customer: an account or a contact): one foreign key
        # per target, each through its own navigation property, sharing the value property
        "organisation": Lookup("parentcustomerid_account", value="_parentcustomerid_value"),
        "parent_contact": Lookup("parentcustomerid_contact", value="_parentcustomerid_value"),
        "sector": ("industrycode", OptionSet({"retail": 1})),  # a converter of one's own
    }
    allow_full_reads = False          # a filter relaxed to nothing reads the whole set
    reads = "changes"                 # optional: reads backed by the change feed (migrator.feed)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import models

from cdms_api.keys import default_key, default_logical_name, lookup_value

from .converters import Converter, converter_for

if TYPE_CHECKING:
    from .models import CDMSModel


@dataclass(frozen=True)
class Lookup:
    """A ForeignKey's remote lookup: written as ``<navigation>@odata.bind`` and read as
    ``value`` (by default ``_<navigation>_value``)."""

    navigation: str
    value: str | None = None

    @property
    def attribute(self) -> str:
        return self.value or f"_{self.navigation}_value"


@dataclass
class FieldMap:
    """One mapped field. ``remote`` is the property read from records and compared in filters;
    for a lookup, ``navigation`` is what writes bind and related filters traverse."""

    field: models.Field
    remote: str
    converter: Converter | None = None
    navigation: str | None = None

    @property
    def is_lookup(self) -> bool:
        return self.navigation is not None

    @property
    def is_shared(self) -> bool:
        """A lookup with several targets (``_parentcustomerid_value`` read through
        ``parentcustomerid_account``): its value may point at a table other than this
        field's, which the record's ``lookuplogicalname`` annotation tells."""
        return self.is_lookup and self.remote != f"_{self.navigation}_value"

    def lookup_key(self, record: dict[str, Any]) -> str | None:
        """The key this lookup field holds in a record: None when empty, or when it points
        at another table than the field's target."""
        value = lookup_value(record, self.remote)
        if value is None:
            return None
        if value.logical_name and value.logical_name != self.target.cdms.logical_name:
            return None
        return value.key

    @property
    def target(self) -> type[CDMSModel]:
        return self.field.related_model

    def to_python(self, value: Any) -> Any:
        return self.converter.to_python(self.field, value)

    def to_remote(self, value: Any) -> Any:
        return self.converter.to_remote(self.field, value)


@dataclass
class Mapping:
    model: type[models.Model]
    entity_set: str
    key: str
    logical_name: str
    fields: list[FieldMap] = field(default_factory=list)
    allow_full_reads: bool = False
    reads: str | None = None  # "changes" or "filtered"; None: CDMS["READS"]
    errors: list[str] = field(default_factory=list)  # reported by the system check

    def __post_init__(self) -> None:
        self._by_name = {fm.field.name: fm for fm in self.fields}

    @classmethod
    def from_model(cls, model: type[models.Model]) -> Mapping:
        spec = getattr(model, "CDMS", None)
        entity_set = getattr(spec, "entity_set", "")
        key = getattr(spec, "key", None) or default_key(entity_set)
        logical_name = getattr(spec, "logical_name", None) or default_logical_name(entity_set)
        mapping = cls(
            model,
            entity_set,
            key,
            logical_name,
            allow_full_reads=getattr(spec, "allow_full_reads", False),
            reads=getattr(spec, "reads", None),
        )
        if mapping.reads not in (None, "changes", "filtered"):
            mapping.errors.append(f"reads '{mapping.reads}': 'changes' or 'filtered'")
        for name, target in (getattr(spec, "fields", None) or {}).items():
            mapped = mapping._field(name, target)
            if mapped is None:
                continue
            if any(_same_property(fm, mapped) for fm in mapping.fields):
                mapping.errors.append(f"maps the remote property '{mapped.remote}' twice")
            mapping.fields.append(mapped)
        if not entity_set:
            mapping.errors.append("has no CDMS.entity_set")
        mapping.__post_init__()
        return mapping

    def _field(self, name: str, spec: Any) -> FieldMap | None:
        try:
            django_field = self.model._meta.get_field(name)
        except Exception:
            self.errors.append(f"maps '{name}', which is not a field of the model")
            return None
        converter = None
        if isinstance(spec, tuple):
            spec, converter = spec
        if name in BOOKKEEPING:
            self.errors.append(f"maps '{name}', which migrator keeps itself")
            return None
        if django_field.many_to_one:
            lookup = spec if isinstance(spec, Lookup) else Lookup(str(spec))
            if not _synced(django_field.related_model):
                target = getattr(django_field.related_model, "__name__", django_field.related_model)
                self.errors.append(f"maps '{name}', a ForeignKey to {target}, which is not synced")
            return FieldMap(django_field, lookup.attribute, navigation=lookup.navigation)
        if not django_field.concrete or django_field.is_relation:
            self.errors.append(
                f"maps '{name}', a {type(django_field).__name__}: only concrete "
                "fields and ForeignKeys to synced models can be mapped"
            )
            return None
        converter = converter or converter_for(django_field)
        if converter is None:
            self.errors.append(
                f"maps '{name}', a {type(django_field).__name__}: no converter "
                'for that type (give one: ("property", Converter()))'
            )
            return None
        if str(spec) == self.key:
            self.errors.append(f"maps '{name}' to the remote key '{self.key}' (that is cdms_pk)")
            return None
        return FieldMap(django_field, str(spec), converter)

    def get(self, name: str) -> FieldMap | None:
        """The map of a field (by name or attname), None if it is local only."""
        return self._by_name.get(name) or next(
            (fm for fm in self.fields if fm.field.attname == name), None
        )

    @property
    def select(self) -> list[str]:
        """The properties a read asks for."""
        return list(dict.fromkeys([self.key, "modifiedon", *(fm.remote for fm in self.fields)]))


def _same_property(one: FieldMap, other: FieldMap) -> bool:
    """Two maps of one property; a lookup with several targets may be mapped once per target
    (by a navigation property each)."""
    if one.remote != other.remote:
        return False
    return not (one.is_lookup and other.is_lookup and one.navigation != other.navigation)


# the fields CDMSModel adds and the sync engine writes
BOOKKEEPING = frozenset({"cdms_pk", "cdms_modified", "cdms_etag"})


def is_cdms_model(model: Any) -> bool:
    """A subclass of ``CDMSModel``, told by its class alone, without building its mapping
    (which may be the one being built) nor importing ``models`` (which imports this)."""
    return isinstance(model, type) and any("cdms" in vars(base) for base in model.__mro__)


def _synced(model: Any) -> bool:
    """A ``CDMSModel`` with an entity set."""
    return is_cdms_model(model) and bool(getattr(getattr(model, "CDMS", None), "entity_set", ""))


def synced_models() -> list[type[models.Model]]:
    """Every installed synced model."""
    return [m for m in apps.get_models() if _synced(m) and not m._meta.proxy]
