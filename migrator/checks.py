"""``manage.py check``: every synced model's mapping is complete and convertible, and no
deletion can remove its rows locally only."""

from __future__ import annotations

from itertools import chain

from django.apps import apps
from django.core import checks
from django.db import models

from .mapping import is_cdms_model


@checks.register(checks.Tags.models)
def check_mappings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    if app_configs is None:
        candidates = apps.get_models()
    else:  # as Django's model checks do: the models of those apps (even of another registry)
        candidates = chain.from_iterable(app_config.get_models() for app_config in app_configs)
    for model in candidates:
        if not is_cdms_model(model):
            continue
        for problem in model.cdms.errors:
            errors.append(
                checks.Error(
                    f"class CDMS {problem}.",  # Django prefixes the model's label (obj)
                    hint="See docs/usage.md, 'Mapping'.",
                    obj=model,
                    id="migrator.E001",
                )
            )
        errors.extend(_cannot_hold_null(model))
        errors.extend(_cascades_from_local_rows(model))
    return errors


def _cascades_from_local_rows(model) -> list[checks.CheckMessage]:
    """A foreign key of a synced model to a model that is not synced, with
    ``on_delete=CASCADE``: deleting a row of that model deletes synced rows through Django's
    plain deletion, locally only, and leaves their records in the CRM. (Between synced
    models a cascade is deleted remotely too: ``migrator.deletion``.)"""
    return [
        checks.Error(
            f"{model.__name__}.{field.name} cascades deletes from {field.related_model.__name__},"
            " which is not synced: deleting one of its rows would delete rows of "
            f"{model.__name__} locally only, and leave their records in the CRM.",
            hint="Use on_delete=SET_NULL or PROTECT, or delete the synced rows first.",
            obj=field,
            id="migrator.E011",
        )
        for field in model._meta.get_fields()
        if field.many_to_one
        and field.concrete
        and field.remote_field.on_delete is models.CASCADE
        and not is_cdms_model(field.related_model)
    ]


def _cannot_hold_null(model) -> list[checks.CheckMessage]:
    """Fields with ``null=False`` and no default mapped to a remote property, which the CRM
    may leave null (a Dataverse column is optional unless the table says otherwise): a
    record with a null there cannot be stored locally."""
    return [
        checks.Warning(
            f"{model.__name__}.{fm.field.name} cannot hold null (null=False, no default) but "
            f"is mapped to the remote property '{fm.remote}', which may be null: records "
            "with a null there are not stored locally.",
            hint="Give the field null=True, or a default to store in place of the null.",
            obj=fm.field,
            id="migrator.W001",
        )
        for fm in model.cdms.fields
        if not fm.field.null
        and not fm.field.has_default()
        and (fm.is_lookup or fm.to_python(None) is None)
    ]
