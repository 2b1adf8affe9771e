"""Benchmarks, run on demand (``python -m bench.run``); never part of the test suite."""
