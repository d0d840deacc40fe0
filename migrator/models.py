"""``CDMSModel``: a Django model whose rows live in the remote CRM."""

from __future__ import annotations

import contextlib
import functools
import uuid
from typing import Any

from django.db import models, transaction
from django.utils.functional import classproperty

from . import deletion, instances, local, writes
from .local import local_only
from .manager import CDMSManager
from .mapping import Mapping
from .state import SeenKey, SyncState

__all__ = ["CDMSModel", "SeenKey", "SyncState"]


class CDMSModel(models.Model):
    """Abstract base of synced models. Adds the remote key, the remote ``modifiedon`` and
    ETag the row was last synced with, and local ``created``/``modified`` timestamps.

    ``save()`` and ``delete()`` write to the remote inside the local transaction and roll the
    local write back when the remote one fails (a save whose one ``UPDATE`` needs no
    transaction undoes the remote write instead, ``writes.InPlace``); ``skip_cdms=True``
    writes locally only."""

    cdms_pk = models.UUIDField(
        unique=True, null=True, blank=True, editable=False, verbose_name="remote key"
    )
    cdms_modified = models.DateTimeField(
        null=True, blank=True, editable=False, verbose_name="remote modifiedon"
    )
    cdms_etag = models.CharField(max_length=64, blank=True, default="", editable=False)
    created = models.DateTimeField(auto_now_add=True)
    modified = models.DateTimeField(auto_now=True)

    objects = CDMSManager()

    class Meta:
        abstract = True
        # Django reads related rows (``contact.organisation``), refreshes instances and
        # collects rows to delete through the base manager: it must sync too.
        base_manager_name = "objects"

    @classproperty
    def cdms(cls) -> Mapping:
        """The remote mapping, built once per model from its ``class CDMS``."""
        if "_cdms_mapping" not in cls.__dict__:
            cls._cdms_mapping = Mapping.from_model(cls)
        return cls._cdms_mapping

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._cdms_loaded = instances.snapshot(instance)
        return instance

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        deletion.follow(cls)

    def save(self, *args: Any, skip_cdms: bool | None = None, **kwargs: Any) -> None:
        """Save locally and remotely (see the class's docstring). ``skip_cdms`` defaults to
        True for the saves a ``skip_cdms()`` queryset's methods make."""
        if _locally(self, skip_cdms):
            return super().save(*args, **kwargs)
        using = kwargs.get("using") or self._state.db or "default"
        creating = self._state.adding
        remote_create = creating or not self.cdms_etag  # never synced: a local-only row
        if remote_create and self.cdms_pk is None:
            self.cdms_pk = uuid.uuid4()  # kept on failure, so a retried save stays one record
        update_fields = kwargs.get("update_fields")
        update = None if remote_create else writes.in_place_update(self, update_fields)
        alone = (
            update is not None
            and not transaction.get_connection(using).in_atomic_block
            and update.needs_no_transaction()
        )
        local_writes = contextlib.nullcontext() if alone else transaction.atomic(using=using)
        try:
            with writes.in_place(update), local_writes:
                super().save(*args, **kwargs)
                if update is None or not update.handled:
                    writes.push(self, remote_create, update_fields)
                else:
                    update.adopt()
        except BaseException:
            if creating:
                self.pk, self._state.adding = None, True
            raise

    def _do_update(self, base_qs, using, pk_val, values, update_fields, forced_update) -> bool:
        """The update this save sends, sent first (``writes.InPlace``): one local ``UPDATE``
        then writes the record as the CRM stored it. A row missing locally is inserted so."""
        update = writes.sending_in_place(self)
        if update is None:
            return super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)
        values = update.send(values)
        updated = super()._do_update(base_qs, using, pk_val, values, update_fields, forced_update)
        if not updated:
            update.adopt()
        return updated

    def refresh_from_db(self, using=None, fields=None, from_queryset=None) -> None:
        """Sync the row, then reload it, as every read does; a deferred field loaded on
        first access (``only()``, ``defer()``) is read locally, as stored when the instance
        was read. Also note the refreshed values as loaded, so that the next save sends what
        differs from them (and nothing a refresh brought in)."""
        deferred = fields is not None and set(fields) <= self.get_deferred_fields()
        with local_only() if deferred else contextlib.nullcontext():
            super().refresh_from_db(using=using, fields=fields, from_queryset=from_queryset)
        names = None if fields is None else set(fields)
        refreshed = {
            attname: value
            for attname, value in instances.snapshot(self).items()
            if names is None or attname in names or self._meta.get_field(attname).name in names
        }
        self._cdms_loaded = {**getattr(self, "_cdms_loaded", {}), **refreshed}

    def delete(self, *args: Any, skip_cdms: bool | None = None, **kwargs: Any):
        """Delete locally and remotely, the synced rows ``on_delete=CASCADE`` deletes with
        it too (``migrator.deletion``)."""
        if _locally(self, skip_cdms):
            with local_only():
                return super().delete(*args, **kwargs)
        using = kwargs.get("using") or self._state.db or "default"
        pk = self.pk
        try:
            return deletion.delete(
                functools.partial(super().delete, *args, **kwargs), using, "delete"
            )
        except BaseException:
            # Django cleared the primary key: the row is still there when it was rolled back
            if local.rows(type(self)).using(using).filter(pk=pk).exists():
                setattr(self, self._meta.pk.attname, pk)
            raise


def _locally(instance: CDMSModel, skip_cdms: bool | None) -> bool:
    return local.writes_locally(type(instance)) if skip_cdms is None else skip_cdms
