"""Benchmarks: ``python -m benchmarks`` (``make benchmark``) measures, prints a table and writes
the figures to a JSON file; never pass/fail, never part of the test suite (docs/benchmarks.md).

Django is configured here, from the example project's settings, before any benchmark module
imports the example models."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
django.setup()
