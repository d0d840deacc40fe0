"""The Celery app; workers run with ``celery -A core worker``, the schedule with
``celery -A core beat``: an incremental resync of every synced model every
``CDMS_RESYNC_EVERY_S`` seconds (300 by default; see docs/resync.md)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")

app = Celery("core")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.beat_schedule = {
    "cdms-incremental-resync": {
        "task": "migrator.resync_all",
        "schedule": float(os.environ.get("CDMS_RESYNC_EVERY_S", "300")),
    },
}
