"""Callbacks that print how long ``predict`` takes and how many requests are in flight."""

from __future__ import annotations

import time
from typing import Any, Optional

from litserve.callbacks.base import Callback


class PredictionTimeLogger(Callback):
    """Prints ``Prediction took 0.12 seconds`` after every ``predict`` (every batch when batching)."""

    def on_before_predict(self, lit_api: Any) -> None:
        self._start_time = time.perf_counter()

    def on_after_predict(self, lit_api: Any) -> None:
        elapsed = time.perf_counter() - self._start_time
        print(f"Prediction took {elapsed:.2f} seconds", flush=True)


class RequestTracker(Callback):
    """Prints ``Active requests: N`` as each request arrives (N is None unless ``track_requests=True``)."""

    def on_request(self, active_requests: Optional[int] = None, **kwargs: Any) -> None:
        print(f"Active requests: {active_requests}", flush=True)
