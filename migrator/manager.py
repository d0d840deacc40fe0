"""``CDMSManager`` and ``CDMSQuerySet``: querysets of synced models. Their query is a
``CDMSQuery``, which brings the local rows it can return up to date with the remote just
before it runs, whichever Django method runs it; then the ordinary Django query answers.
Writes go through to the remote: ``update``, ``delete``, ``bulk_create`` and ``bulk_update``
(``bulk``, ``deletion``), and Django's own ``create``, ``get_or_create`` and
``update_or_create``, whose saves write through. ``skip_cdms()`` gives a purely local
queryset, every method Django's, reads and writes local."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.db import models, transaction

from . import bulk, creation, deletion
from .local import local_only, syncs, writing_locally
from .query import CDMSQuery
from .sync import describe, refresh


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

    @contextlib.contextmanager
    def _locally(self) -> Iterator[None]:
        """A ``skip_cdms()`` queryset's writes: the rows Django reads for them (related rows,
        the row ``get_or_create`` looks up) are read locally, and the saves it makes are
        local only."""
        with local_only(), writing_locally(self.model):
            yield

    def _prefetch_related_objects(self) -> None:
        """A ``skip_cdms()`` queryset prefetches locally too (the related managers it uses
        would sync otherwise)."""
        if self.query.cdms_sync:
            return super()._prefetch_related_objects()
        with local_only():
            super()._prefetch_related_objects()

    def create(self, **kwargs: Any):
        if syncs(self.query):
            return super().create(**kwargs)
        with self._locally():
            return super().create(**kwargs)

    def get_or_create(self, defaults=None, **kwargs: Any):
        """Django's ``get_or_create``, under a lock on the lookup in the local database
        (``creation``): two processes asking for the same lookup at once make one record,
        and the second gets the first one's row."""
        if not syncs(self.query):
            with self._locally():
                return super().get_or_create(defaults, **kwargs)
        self._for_write = True
        with transaction.atomic(using=self.db):
            creation.lock(self.model, kwargs, self.db)
            return super().get_or_create(defaults, **kwargs)

    def update_or_create(self, defaults=None, create_defaults=None, **kwargs: Any):
        """Django's ``update_or_create``: its ``get_or_create`` takes the lookup's lock, the
        row is read through the remote and locked locally, and the save that follows
        carries the ETag it was read with."""
        if syncs(self.query):
            return super().update_or_create(defaults, create_defaults, **kwargs)
        with self._locally():
            return super().update_or_create(defaults, create_defaults, **kwargs)

    def update(self, **kwargs: Any) -> int:
        if not syncs(self.query):
            if not deletion.unlinking(self):
                return 0
            with self._locally():
                return super().update(**kwargs)
        return bulk.update(self, kwargs)

    update.alters_data = True

    def delete(self) -> tuple[int, dict[str, int]]:
        if not syncs(self.query):
            with self._locally():
                return super().delete()
        refresh(self.query)  # the rows to delete, up to date: one read
        return deletion.delete(super().delete, self.db, "delete")

    delete.alters_data = True
    delete.queryset_only = True

    def bulk_create(
        self,
        objs: Iterable[models.Model],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Sequence[str] | None = None,
        unique_fields: Sequence[str] | None = None,
        atomic: bool = False,
    ) -> list[models.Model]:
        """Django's ``bulk_create``, locally, then the records remotely (``bulk``): in one
        request per 1,000 objects; ``atomic=True`` all or nothing, in one changeset."""
        options = {
            "batch_size": batch_size,
            "ignore_conflicts": ignore_conflicts,
            "update_conflicts": update_conflicts,
            "update_fields": update_fields,
            "unique_fields": unique_fields,
        }
        if syncs(self.query):
            return bulk.bulk_create(self, objs, atomic=atomic, **options)
        with self._locally():
            return super().bulk_create(objs, **options)

    bulk_create.alters_data = True

    def bulk_update(
        self, objs: Iterable[models.Model], fields: Sequence[str], batch_size: int | None = None
    ) -> int:
        if syncs(self.query):
            return bulk.bulk_update(self, objs, fields, batch_size)
        with self._locally():
            return super().bulk_update(objs, fields, batch_size)

    bulk_update.alters_data = True

    def raw(self, raw_query: str, params: Any = (), translations: Any = None, using: Any = None):
        """Django's ``raw()``: the SQL runs on the local tables, once the rows this queryset
        selects are synced (for the manager's: every record, up to ``MAX_SYNC_ROWS``, as
        ``all()``), when ``raw()`` is called."""
        if syncs(self.query):
            refresh(self.query)
        return super().raw(raw_query, params, translations, using)


class CDMSManager(models.Manager.from_queryset(CDMSQuerySet)):
    pass
