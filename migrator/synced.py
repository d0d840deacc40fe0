"""The synced models of the project: every ``CDMSModel`` with an entity set, related ones first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from django.apps import apps

from . import mapping

if TYPE_CHECKING:
    from .models import CDMSModel


def synced_models() -> list[type[CDMSModel]]:
    """Every synced model, each after the models its foreign keys point at (so a resync of
    all of them finds the related rows in place)."""
    models = mapping.synced_models()
    ordered: list[type[CDMSModel]] = []

    def visit(model: type[CDMSModel], path: tuple = ()) -> None:
        if model in ordered or model in path:
            return
        for fm in model.cdms.fields:
            if fm.is_lookup and fm.target in models:
                visit(fm.target, (*path, model))
        ordered.append(model)

    for model in models:
        visit(model)
    return ordered


def models_named(labels: Iterable[str]) -> list[type[CDMSModel]]:
    """The synced models named ``app_label.ModelName`` (all of them, related first, when
    none is named); ``LookupError`` for a name that is not one."""
    synced = synced_models()
    named = []
    for label in labels:
        model = apps.get_model(label)  # LookupError for an unknown one
        if model not in synced:
            raise LookupError(f"{label} is not a synced model (a CDMSModel with an entity set)")
        named.append(model)
    return named or synced
