"""Transitional: ``app.py`` still imports ``requests_run_at_once`` from here; it lives in ``litserve.loops``.

Delete this module once nothing imports it (tests/unit/test_architecture.py lists it in TRANSITIONAL_SHIMS).
"""

from litserve.loops import requests_run_at_once

__all__ = ["requests_run_at_once"]
