"""Celery tasks: resync one synced model, or every one (``core.celery`` runs the latter on a
beat schedule); verify one, or every one (``migrator.verify``: on a schedule of the project's
choosing); or one model's full resync split into ranges read by many workers
(``resync_partitioned``, ``resync_partition``: see ``migrator.partitions``).

Throttling (429) and transient failures (5xx, no answer) that outlast the client's own retries
are retried through Celery, after the remote's ``Retry-After`` or a capped exponential backoff,
and the retried run goes on from its checkpoint. Any other error is permanent: recorded in the
model's ``SyncState`` and raised, so the task fails and says why.
"""

from __future__ import annotations

import logging
import random

from django.apps import apps

from cdms_api.errors import CDMSError, ServerError, Throttled, TransportError
from cdms_api.extras import MissingExtra

try:
    from celery import shared_task
except ModuleNotFoundError as error:
    raise MissingExtra("The Celery resync tasks (migrator.tasks)", "celery", "celery") from error

from . import partitions, resync, verify
from .remote import setting
from .state import SyncState
from .synced import synced_models

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


def retry_later(task, label: str, error: CDMSError, noted: bool = True):
    """Retry ``task`` after a transient error (the run goes on from its checkpoint), noting
    why in the model's ``SyncState`` unless not ``noted`` (a verify leaves the resync's status
    alone); re-raise once ``RESYNC_MAX_RETRIES`` are spent."""
    limit = int(setting("RESYNC_MAX_RETRIES", 10))
    if task.request.retries >= limit:
        raise error
    delay = retry_delay(error, task.request.retries)
    if noted:
        SyncState.objects.filter(model=label).update(
            status=SyncState.Status.RETRYING,
            last_error=f"{type(error).__name__}: {error} (retry {task.request.retries + 1} of "
            f"{limit} in {delay:.0f} s)",
        )
    logger.warning("%s: %s; retrying in %.1f s", label, error, delay)
    return task.retry(exc=error, countdown=delay, max_retries=limit)


@shared_task(bind=True, name="migrator.resync_model", acks_late=True, max_retries=None)
def resync_model(self, label: str, full: bool = False) -> dict:
    """Resync the model named ``app_label.ModelName``; returns ``resync.Outcome`` as a dict
    (``ran`` False when another resync of it held the lock)."""
    model = apps.get_model(label)
    try:
        return resync.resync(model, full=full).as_dict()
    except TRANSIENT as error:
        raise retry_later(self, label, error) from error


@shared_task(bind=True, name="migrator.resync_partitioned", acks_late=True, max_retries=None)
def resync_partitioned(self, label: str, ranges: int) -> list[int] | dict:
    """A full resync of the model split into ``ranges`` ranges of ``createdon``
    (``migrator.partitions``): plan it, then queue one ``resync_partition`` task per range.
    Returns the ranges queued (or the outcome saying why none was)."""
    model = apps.get_model(label)
    try:
        numbers = partitions.plan(model, ranges)
    except TRANSIENT as error:
        raise retry_later(self, label, error) from error
    if isinstance(numbers, resync.Outcome):
        return numbers.as_dict()
    for number in numbers:
        resync_partition.delay(label, number)
    if not numbers:  # every range was read before: only the merge is left
        partitions.merge(model)
    return numbers


@shared_task(bind=True, name="migrator.resync_partition", acks_late=True, max_retries=None)
def resync_partition(self, label: str, number: int) -> dict:
    """Read one range of a partitioned full resync; the task that reads the last range ends
    the run (``merged`` in its answer)."""
    model = apps.get_model(label)
    try:
        outcome = partitions.read_range(model, number).as_dict()
    except TRANSIENT as error:
        raise retry_later(self, label, error) from error
    merged = partitions.merge(model, wait_s=float(setting("RESYNC_LOCK_TTL_S", 60)))
    return {**outcome, "merged": None if merged is None else merged.as_dict()}


@shared_task(name="migrator.resync_all")
def resync_all(full: bool = False) -> list[str]:
    """Queue a resync of every synced model (related models first); returns their labels."""
    return queue_for_each_model(resync_model, full=full)


@shared_task(bind=True, name="migrator.verify_model", acks_late=True, max_retries=None)
def verify_model(self, label: str, fix: bool = False) -> dict:
    """Compare the model's local rows with the remote (``migrator.verify``); returns the
    report as a dict, also kept on its ``SyncState``. Transient errors are retried as a
    resync's are, without touching the resync's status."""
    model = apps.get_model(label)
    try:
        return verify.verify(model, fix=fix).as_dict()
    except TRANSIENT as error:
        raise retry_later(self, label, error, noted=False) from error


@shared_task(name="migrator.verify_all")
def verify_all(fix: bool = False) -> list[str]:
    """Queue a verify of every synced model; returns their labels."""
    return queue_for_each_model(verify_model, fix=fix)


def queue_for_each_model(task, **options) -> list[str]:
    """Queue ``task`` once per synced model (related models first), with ``options``;
    returns the models' labels."""
    labels = [model._meta.label for model in synced_models()]
    for label in labels:
        task.delay(label, **options)
    return labels
