"""Benchmarks: ``python -m benchmarks`` (or ``make benchmark``) runs them all and prints figures.
They are never part of the test suite."""
