"""Optional dependencies: each part that needs one names the extra that installs it.

The library installs lean (``pip install django-cdms``); the Celery tasks, the simulator and the
Redis-backed parts need an extra (``django-cdms[celery]``, ``[simulator]``, ``[redis]``...).
``require`` stops an import of such a part at once, with an error that says what to install,
where Python would only say that some module is missing."""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "django-cdms"


class MissingExtra(ImportError):
    """A part of the library was used without the extra that installs what it needs."""

    def __init__(self, part: str, module: str, extra: str):
        self.part, self.extra = part, extra
        super().__init__(
            f"{part} needs the package that provides '{module}', installed with the "
            f"'{extra}' extra: pip install '{DISTRIBUTION}[{extra}]'",
            name=module,
        )


def require(part: str, extra: str, *modules: str) -> None:
    """Raise ``MissingExtra`` unless each of ``modules`` can be imported."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtra(part, module, extra)
