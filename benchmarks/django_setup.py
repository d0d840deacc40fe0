"""Django for a benchmark run outside the tests: the example project's settings on a database
of the benchmarks' own (an SQLite file in the temporary directory, unless ``DATABASE_URL``
says otherwise), migrated. Within the tests, Django is set up already and this does nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import django
from django.apps import apps
from django.core.management import call_command


def standalone() -> None:
    if apps.ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
    database = Path(tempfile.gettempdir()) / "cdms-benchmarks.sqlite3"
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{database}")
    django.setup()
    call_command("migrate", verbosity=0)
