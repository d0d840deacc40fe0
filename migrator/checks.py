"""``manage.py check``: every synced model's mapping is complete and convertible."""

from __future__ import annotations

from itertools import chain

from django.apps import apps
from django.core import checks

from .mapping import is_cdms_model


@checks.register(checks.Tags.models)
def check_mappings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    if app_configs is None:
        models = apps.get_models()
    else:  # as Django's model checks do: the models of those apps (even of another registry)
        models = chain.from_iterable(app_config.get_models() for app_config in app_configs)
    for model in models:
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
    return errors


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
