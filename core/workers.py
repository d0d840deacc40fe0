"""Celery worker processes of the example project, started by tests and benchmarks on their
own database, Redis, queue and ``CDMS`` settings (``core.worker_settings`` reads them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from django.conf import settings
from django.db import connection


def child_environment(cdms: dict, redis_url: str, queue: str) -> dict[str, str]:
    """The environment of a child process of the example project (``core.worker_settings``)
    on this process's database, with ``cdms`` as its ``settings.CDMS``."""
    database = {
        key: value
        for key, value in connection.settings_dict.items()
        if key in ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    }
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.worker_settings",
        "CDMS_TEST_DATABASE": json.dumps(database),
        "CDMS_TEST_CDMS": json.dumps(cdms),
        "CDMS_TEST_REDIS_URL": redis_url,
        "CDMS_TEST_QUEUE": queue,
    }


@contextmanager
def worker_process(queue: str, log: IO, redis_url: str, cdms: dict) -> Iterator[subprocess.Popen]:
    """``celery -A core worker`` (one process, the solo pool) on this process's database,
    with ``redis_url`` as its broker and result backend, consuming ``queue``, with ``cdms`` as
    its ``settings.CDMS``; its output goes to ``log``. Killed on exit."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "core",
            "worker",
            "--pool=solo",
            "-Q",
            queue,
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=INFO",
            "-n",
            f"{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=settings.BASE_DIR,
        env=child_environment(cdms, redis_url, queue),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=30)
