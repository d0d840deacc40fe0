"""``manage.py check``: every synced model's mapping is complete and convertible."""

from __future__ import annotations

from django.apps import apps
from django.core import checks


@checks.register(checks.Tags.models)
def check_mappings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .models import CDMSModel

    errors = []
    for model in apps.get_models():
        if not issubclass(model, CDMSModel):
            continue
        if app_configs is not None and model._meta.app_config not in app_configs:
            continue
        for problem in model.cdms.errors:
            errors.append(
                checks.Error(
                    f"{model._meta.label}: class CDMS {problem}.",
                    hint="See docs/usage.md, 'Mapping'.",
                    obj=model,
                    id="migrator.E001",
                )
            )
    return errors
