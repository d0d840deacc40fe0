"""The test settings: the example project, plus a second app with models of its own."""

from core.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.secondapp"]  # noqa: F405
