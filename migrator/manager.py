"""``CDMSManager`` and ``CDMSQuerySet``: querysets of synced models. Their query is a
``CDMSQuery``, which brings the local rows it can return up to date with the remote just
before it runs, whichever Django method runs it; then the ordinary Django query answers.
``skip_cdms()`` gives a purely local queryset."""

from __future__ import annotations

from typing import Any

from django.db import models, transaction
from django.db.models import Field
from django.db.models.utils import resolve_callables

from cdms_api.errors import CDMSNotSupported

from .feed import catch_up, reads_changes
from .local import local_only, syncs
from .query import CDMSQuery
from .sync import describe

WRITES_LOCAL_ONLY = (
    "would change local rows only and leave the CRM behind; use obj.save()/obj.delete() per "
    "object, or skip_cdms().{name}() for a deliberately local-only change."
)


def _refused(name: str, why: str = WRITES_LOCAL_ONLY):
    """A queryset method refused while syncing, since it would act on local rows only. On a
    local queryset it runs locally throughout: the related rows Django reads for it (the
    deletion collector's) are read locally too."""

    def method(self: CDMSQuerySet, *args: Any, **kwargs: Any):
        if syncs(self.query):
            raise CDMSNotSupported(
                f"{self.model.__name__}.objects...{name}() " + why.format(name=name)
            )
        with local_only():
            return getattr(super(CDMSQuerySet, self), name)(*args, **kwargs)

    method.__name__ = name
    original = getattr(models.QuerySet, name)
    method.alters_data = getattr(original, "alters_data", False)
    method.queryset_only = getattr(original, "queryset_only", False)
    return method


class CDMSQuerySet(models.QuerySet):
    def __init__(self, model=None, query=None, using=None, hints=None):
        super().__init__(model, query or CDMSQuery(model), using, hints)

    def skip_cdms(self) -> CDMSQuerySet:
        """A purely local queryset: no remote call, every Django method as usual."""
        clone = self._chain()
        clone.query.cdms_sync = False
        return clone

    @property
    def cdms_query(self) -> str:
        """The remote request this queryset would make, without making it (as ``str(qs.query)``
        shows the SQL)."""
        return describe(self.query)

    def _prefetch_related_objects(self) -> None:
        """A ``skip_cdms()`` queryset prefetches locally too (the related managers it uses
        would sync otherwise)."""
        if self.query.cdms_sync:
            return super()._prefetch_related_objects()
        with local_only():
            super()._prefetch_related_objects()

    def create(self, **kwargs: Any):
        obj = self.model(**kwargs)
        self._for_write = True
        obj.save(force_insert=True, using=self.db, skip_cdms=not self.query.cdms_sync)
        return obj

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs: Any):
        """Django's ``update_or_create``, whose saves write to the remote unless this is a
        ``skip_cdms()`` queryset. The row is read through the remote and locked locally as
        Django locks it; the update carries the ETag it was read with."""
        update_defaults = defaults or {}
        if create_defaults is None:
            create_defaults = update_defaults
        self._for_write = True
        with transaction.atomic(using=self.db):
            locked = super().select_for_update()  # keeps syncing, unlike self.select_for_update
            obj, created = locked.get_or_create(create_defaults, **kwargs)
            if created:
                return obj, created
            for name, value in resolve_callables(update_defaults):
                setattr(obj, name, value)
            update_fields = set(update_defaults)
            meta = self.model._meta
            if meta._non_pk_concrete_field_names.issuperset(update_fields):
                for field in meta.local_concrete_fields:  # auto_now fields, as Django does
                    if not (field in meta.pk_fields or type(field).pre_save is Field.pre_save):
                        update_fields.update({field.name, field.attname})
            else:
                update_fields = None
            obj.save(using=self.db, update_fields=update_fields, skip_cdms=not self.query.cdms_sync)
        return obj, False

    update = _refused("update")
    delete = _refused("delete")
    bulk_create = _refused("bulk_create")
    bulk_update = _refused("bulk_update")
    select_for_update = _refused("select_for_update")

    def raw(self, raw_query: str, params: Any = (), translations=None, using=None):
        """Raw SQL cannot be translated into a remote read: refused while syncing, unless the
        model's reads are backed by the change feed, which is then applied first."""
        if syncs(self.query):
            if not reads_changes(self.model):
                raise CDMSNotSupported(
                    f"{self.model.__name__}.objects...raw() runs SQL the remote cannot be asked "
                    "for; use skip_cdms().raw() on local rows, or reads backed by the change "
                    "feed (CDMS.reads = 'changes')."
                )
            catch_up(self.model)
        return super().raw(raw_query, params, translations, using)


class CDMSManager(models.Manager.from_queryset(CDMSQuerySet)):
    pass
