"""The Django side of django-cdms: models synced through to the remote CRM.

``migrator.atomic()``: several saves and deletes, across models, all or nothing on both sides
(``migrator.blocks``)."""

from typing import Any

__all__ = ["atomic"]


def __getattr__(name: str) -> Any:
    """``migrator.atomic``, imported when first asked for: the package itself is imported
    before Django is set up (its pytest plugin, its app config), the models it needs after."""
    if name == "atomic":
        from .blocks import atomic

        return atomic
    raise AttributeError(f"module 'migrator' has no attribute {name!r}")
