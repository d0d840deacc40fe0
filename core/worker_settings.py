"""Settings of a Celery worker process a test or a benchmark starts (``core.workers``): the
project's, with the caller's database, Redis, queue and ``CDMS`` settings, all passed in the
environment."""

import json
import os

from core.settings import *  # noqa: F403

DATABASES = {"default": json.loads(os.environ["CDMS_TEST_DATABASE"])}
CDMS = json.loads(os.environ["CDMS_TEST_CDMS"])
CELERY_BROKER_URL = CELERY_RESULT_BACKEND = os.environ["CDMS_TEST_REDIS_URL"]
CELERY_TASK_DEFAULT_QUEUE = os.environ["CDMS_TEST_QUEUE"]
