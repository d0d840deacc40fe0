"""The Celery app; workers run with ``celery -A core worker``, the schedule with
``celery -A core beat``: an incremental resync of every synced model every
``CDMS_RESYNC_EVERY_S`` seconds (300 by default; see docs/resync.md), and a drift check of
every one (``cdms_verify``) every ``CDMS_VERIFY_EVERY_S`` seconds (a day by default; see
docs/operations.md)."""

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
    "cdms-verify": {
        "task": "migrator.verify_all",
        "schedule": float(os.environ.get("CDMS_VERIFY_EVERY_S", "86400")),
    },
}
