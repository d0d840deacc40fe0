import os

from hypothesis import settings

# CI runs the property tests on a fixed sequence of examples, so that a run is repeatable and
# never fails on an example no developer saw; developers' runs keep exploring new ones.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI", "").lower() == "true":
    settings.load_profile("ci")

# a project of its own, run by tests/test_wheel.py from the installed wheel
collect_ignore = ["downstream_project"]
