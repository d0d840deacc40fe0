"""Celery tasks: resync one synced model, or every one (``core.celery`` runs the latter on a
beat schedule).

Throttling (429) and transient failures (5xx, no answer) that outlast the client's own retries
are retried through Celery, after the remote's ``Retry-After`` or a capped exponential backoff,
and the retried run goes on from its checkpoint. Any other error is permanent: recorded in the
model's ``SyncState`` and raised, so the task fails and says why.
"""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.apps import apps

from cdms_api.errors import CDMSError, ServerError, Throttled, TransportError

from . import resync
from .remote import setting
from .state import SyncState

logger = logging.getLogger("migrator.resync")
TRANSIENT = (Throttled, ServerError, TransportError)


def retry_delay(error: CDMSError, retries: int) -> float:
    """Seconds before trying again: the remote's ``Retry-After`` when it gave one, else
    exponential backoff with jitter, capped at ``CDMS["RESYNC_MAX_BACKOFF_S"]`` (600)."""
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return retry_after
    ceiling = min(float(setting("RESYNC_MAX_BACKOFF_S", 600)), 5.0 * 2**retries)
    return random.uniform(ceiling / 2, ceiling)


@shared_task(bind=True, name="migrator.resync_model", acks_late=True, max_retries=None)
def resync_model(self, label: str, full: bool = False) -> dict:
    """Resync the model named ``app_label.ModelName``; returns ``resync.Outcome`` as a dict
    (``ran`` False when another resync of it held the lock)."""
    model = apps.get_model(label)
    try:
        return resync.resync(model, full=full).as_dict()
    except TRANSIENT as error:
        limit = int(setting("RESYNC_MAX_RETRIES", 10))
        if self.request.retries >= limit:
            raise
        delay = retry_delay(error, self.request.retries)
        SyncState.objects.filter(model=label).update(
            status=SyncState.Status.RETRYING,
            last_error=f"{type(error).__name__}: {error} (retry {self.request.retries + 1} of "
            f"{limit} in {delay:.0f} s)",
        )
        logger.warning("%s: %s; retrying in %.1f s", label, error, delay)
        raise self.retry(exc=error, countdown=delay, max_retries=limit) from error


@shared_task(name="migrator.resync_all")
def resync_all(full: bool = False) -> list[str]:
    """Queue a resync of every synced model (related models first); returns their labels."""
    labels = [model._meta.label for model in resync.synced_models()]
    for label in labels:
        resync_model.delay(label, full=full)
    return labels
