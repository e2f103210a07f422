"""Helpers for ``benchmarks/run.py``: server processes, HTTP client, wrk, targets and reporting."""
