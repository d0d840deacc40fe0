"""``manage.py check``: every synced model's mapping is complete and convertible."""

from __future__ import annotations

from itertools import chain

from django.apps import apps
from django.core import checks


@checks.register(checks.Tags.models)
def check_mappings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from .models import CDMSModel

    errors = []
    if app_configs is None:
        models = apps.get_models()
    else:  # as Django's model checks do: the models of those apps (even of another registry)
        models = chain.from_iterable(app_config.get_models() for app_config in app_configs)
    for model in models:
        if not issubclass(model, CDMSModel):
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
    return errors
