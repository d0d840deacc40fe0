"""The demo's resync part: a full resync with its progress bar, an incremental one that picks
up exactly what changed remotely, and reads backed by the change feed answering what no remote
filter can, exactly, with one request.

Without a broker (``CELERY_BROKER_URL`` unset in the environment) the resyncs run in this
process and their locks are this process's own; with one, the demo starts a Celery worker and
sends the resyncs to it as tasks, through the broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.test.utils import override_settings

from cdms_api.simulator.testing import SimulatorHandle
from core import celery_app
from core.models import Contact, Organisation
from migrator import remote
from migrator.progress import resync_with_progress
from migrator.tasks import resync_model
from migrator.testing import RemoteCallCounter

from .orm import without_select

BULK = 6_000  # accounts added remotely, so that a count passes Dataverse's $count cap of 5,000


class ResyncDemo:
    def __init__(self, simulator: SimulatorHandle, write: Callable[[str], None]):
        self.simulator, self.write = simulator, write
        self.worker_mode = bool(os.environ.get("CELERY_BROKER_URL"))

    def run(self) -> None:
        self.write("\n== Resync: whole entity sets kept in step")
        with self.settings(), self.worker():
            self.full()
            self.incremental()
            self.changes_backed()

    @contextlib.contextmanager
    def settings(self) -> Iterator[None]:
        lock = {} if self.worker_mode else {"LOCK_URL": "memory://"}
        with override_settings(CDMS={**settings.CDMS, **lock}):
            remote.reset()
            yield
        remote.reset()

    @contextlib.contextmanager
    def worker(self) -> Iterator[None]:
        if not self.worker_mode:
            self.write("   (no CELERY_BROKER_URL: the resyncs run in this process)")
            yield
            return
        self.write(f"   (a Celery worker on {os.environ['CELERY_BROKER_URL']} runs the resyncs)")
        with start_worker(celery_app, pool="threads", perform_ping_check=False, loglevel="WARNING"):
            yield

    def resync(self, full: bool = False) -> None:
        if self.worker_mode:
            for model in (Organisation, Contact):
                outcome = resync_model.delay(model._meta.label, full=full).get(timeout=600)
                self.write(
                    f"   {outcome['model']}: {outcome['created']} created, "
                    f"{outcome['updated']} updated, {outcome['deleted']} deleted"
                )
            return
        resync_with_progress([Organisation, Contact], full=full, out=_Lines(self.write))

    def full(self) -> None:
        self.write(f"\n1. A full resync ({BULK:,} more accounts created in the CRM first)")
        self.simulator.load("accounts", [{"name": f"Bulk {i:05d}"} for i in range(BULK)])
        self.resync(full=True)

    def incremental(self) -> None:
        self.write("\n2. Three records changed and two deleted in the CRM: an incremental resync")
        client = remote.client()
        bulk = list(
            Organisation.objects.skip_cdms().filter(name__startswith="Bulk").order_by("name")[:5]
        )
        for org in bulk[:3]:
            client.update("accounts", org.cdms_pk, {"name": f"{org.name} (renamed)"})
        for org in bulk[3:]:
            client.delete("accounts", org.cdms_pk)
        with RemoteCallCounter() as calls:
            self.resync()
        self.write(
            f"   [{len(calls)} remote requests: each model's change feed since its last resync]"
        )

    def changes_backed(self) -> None:
        self.write("\n3. Reads backed by the change feed: exact, whatever the lookup or the size")
        Organisation.cdms.reads = "changes"
        try:
            regex = Organisation.objects.filter(name__regex=r"^Bulk 0000\d \(renamed\)$")
            with RemoteCallCounter() as calls:
                names = [o.name for o in regex.order_by("name")]
            self.write(f"   filter(name__regex=...) -> {names}  [{len(calls)} remote request]")
            with RemoteCallCounter() as calls:
                count = Organisation.objects.count()
            self.write(
                f"   Organisation.objects.count() = {count:,}  [{len(calls)} remote request; "
                "a filtered read would stop at 5,000]"
            )
            self.write(f"   remote: {without_select(self.last_request())}")
        finally:
            Organisation.cdms.reads = None

    def last_request(self) -> str:
        entry = self.simulator.journal()[-1]
        return f"GET {entry['path'].rsplit('/', 1)[-1]}?{entry.get('query') or ''}"


class _Lines:
    """A text stream writing whole lines through the demo's ``write``."""

    def __init__(self, write: Callable[[str], None]):
        self._write = write

    def write(self, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            self._write(f"   {line}")
