"""What the server's processes record for ``/metrics``: the slot layout, and each process's recorder."""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from typing import Any, Callable, Iterable, List, Optional, Sequence

from litserve.metrics.asgi import InstrumentedEndpoint
from litserve.metrics.slots import SlotFile, observe
from litserve.metrics.slots import read_totals as read_slot_totals

TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)

_FIRST_STATUS = 100
_STATUSES = 500  # 100..599
SUFFIX = ".metrics"


class Layout:
    """Where each value lives in a metrics file: one block of slots per route, the same in every process."""

    def __init__(self) -> None:
        offset = 0

        def take(count: int) -> int:
            nonlocal offset
            start, offset = offset, offset + count
            return start

        self.requests = take(_STATUSES)
        self.duration = take(len(TIME_BUCKETS) + 2)  # a count per bucket, +Inf, then the sum
        self.queue_wait = take(len(TIME_BUCKETS) + 2)
        self.batch_size = take(len(BATCH_BUCKETS) + 2)
        self.in_flight = take(1)
        self.restarts = take(1)
        self.log_drops = take(1)
        self.block = offset


LAYOUT = Layout()


class ProcessMetrics:
    """The metrics one process records for ``routes`` routes; kept in memory until ``open`` maps a file.

    After the routes' blocks, an API process's file holds one slot per worker: the requests it holds for it.
    """

    def __init__(self, routes: int, directory: Optional[str] = None) -> None:
        self.routes = routes
        self.directory = directory
        self.workers = 0
        self._slots = SlotFile(routes * LAYOUT.block)

    @property
    def values(self) -> memoryview:
        return self._slots.values

    def open(self, name: str) -> ProcessMetrics:
        """Back the values by ``<directory>/<name>.metrics``; a restarted process continues its file."""
        if self.directory is not None:
            self._slots.open(os.path.join(self.directory, name + SUFFIX))
        return self

    def close(self) -> None:
        self._slots.close()

    # --- recording ---------------------------------------------------------------------------------

    def count_request(self, route: int, status: int, seconds: float) -> None:
        values = self._slots.values
        base = route * LAYOUT.block
        if _FIRST_STATUS <= status < _FIRST_STATUS + _STATUSES:
            values[base + LAYOUT.requests + status - _FIRST_STATUS] += 1.0
        observe(values, base + LAYOUT.duration, TIME_BUCKETS, seconds)

    def count_started(self, route: int, submitted: Iterable[float], batch_size: int) -> None:
        """A worker starts a batch of ``batch_size`` requests sent at ``submitted`` (``time.monotonic()``)."""
        now = time.monotonic()
        values = self._slots.values
        base = route * LAYOUT.block
        start = base + LAYOUT.queue_wait
        total = 0.0
        for sent_at in submitted:
            wait = now - sent_at if now > sent_at else 0.0
            values[start + bisect_left(TIME_BUCKETS, wait)] += 1.0
            total += wait
        values[start + len(TIME_BUCKETS) + 1] += total
        observe(values, base + LAYOUT.batch_size, BATCH_BUCKETS, batch_size)

    def count_restart(self, route: int) -> None:
        self._slots.values[route * LAYOUT.block + LAYOUT.restarts] += 1.0

    def count_log_drop(self, route: int) -> None:
        self._slots.values[route * LAYOUT.block + LAYOUT.log_drops] += 1.0

    def add_held(self, route: int, worker_id: int, delta: float) -> None:
        """An API process took on (+1) or let go of (-1) a request of ``route`` for worker ``worker_id``."""
        values = self._slots.values
        values[route * LAYOUT.block + LAYOUT.in_flight] += delta
        values[self.routes * LAYOUT.block + worker_id] += delta

    def open_api_process(self, api_server: int, workers: int) -> None:
        """Called as an API process starts: its counts go to its own file, with a slot for each worker."""
        if not self._slots.mapped and workers > self.workers:
            self._slots.grow(self.routes * LAYOUT.block + workers)
            self.workers = workers
        self.open(f"api-{api_server}")

    def instrument(self, route: int, endpoint: Callable) -> InstrumentedEndpoint:
        """``endpoint`` (ASGI) wrapped to count its requests by status and time them."""
        return InstrumentedEndpoint(endpoint, route, self)


class WorkerMetrics:
    """What a worker records: how long each request waited for it, how many ran together, how many run now."""

    def __init__(self, directory: str, worker_id: int, route: int) -> None:
        self.route = route
        self.directory = directory
        self.worker_id = worker_id
        self._metrics = ProcessMetrics(route + 1, directory).open(f"worker-{worker_id}")

    def started(self, items: Sequence[Any]) -> None:
        """The worker starts ``items`` (work items, each with its ``submitted`` time) as one batch."""
        self._metrics.count_started(self.route, [item.submitted for item in items], len(items))

    def count_log_drop(self) -> None:
        self._metrics.count_log_drop(self.route)

    def close(self) -> None:
        self._metrics.close()


def read_totals(directory: str, routes: int, workers: int = 0) -> List[float]:
    """The server's totals: every process's file in ``directory`` added up (``routes`` blocks, then workers)."""
    return read_slot_totals(directory, routes * LAYOUT.block + workers, SUFFIX)


class WorkerLayout:
    """Which workers serve each route, and how many requests each of them runs at once."""

    def __init__(self, route_workers: Sequence[Sequence[int]], run_at_once: Sequence[int]) -> None:
        self.route_workers = route_workers
        self.run_at_once = run_at_once

    @property
    def count(self) -> int:
        return sum(len(workers) for workers in self.route_workers)
