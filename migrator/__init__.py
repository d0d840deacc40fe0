"""The Django side of django-cdms: models synced through to the remote CRM.

``migrator.atomic()``: several saves and deletes, across models, all or nothing on both sides
(``migrator.blocks``)."""

from .blocks import atomic

__all__ = ["atomic"]
