"""What the ``cdms_*`` commands resolve from their arguments, as ``CommandError`` when it
cannot be: the synced models named, the remote's ``$metadata``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.management.base import CommandError

from cdms_api.errors import CDMSError
from cdms_api.metadata import EntitySetInfo

from .. import remote
from ..synced import models_named

if TYPE_CHECKING:
    from ..models import CDMSModel


def synced_models_named(labels: list[str]) -> list[type[CDMSModel]]:
    """The synced models named ``app_label.Model`` (every one, when none is named)."""
    try:
        return models_named(labels)
    except LookupError as error:
        raise CommandError(str(error).strip("'\"")) from None


def remote_metadata() -> dict[str, EntitySetInfo]:
    try:
        return remote.client().metadata()
    except CDMSError as error:
        raise CommandError(f"cannot read $metadata: {error}") from error
