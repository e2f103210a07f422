"""Prometheus metrics for every process of one server, cheap enough for the predict fast path.

Each process (API servers, workers, the supervisor) owns one file in the server's metrics directory: a flat
array of float64 slots, memory-mapped, that only that process writes. Recording is a few slot increments
(no lock, no system call, ~0.2 µs per request), so metrics stay on by default. ``GET /metrics`` adds up the
files of all processes and renders them with prometheus-client, so the numbers are the server's totals
whichever API process answers the scrape. Files of exited processes are kept: counters never go back.

Exported (``path`` is the API's route):

- ``litserve_requests_total{path,code}``: requests answered, by HTTP status (499: client left before a reply).
- ``litserve_request_duration_seconds{path}``: arrival to last byte sent, histogram.
- ``litserve_queue_wait_seconds{path}``: from the API process handing a request to a worker until it starts.
- ``litserve_batch_size{path}``: requests per batch given to ``predict``, histogram.
- ``litserve_requests_in_flight{path}``: requests accepted and not yet answered (waiting or running).
- ``litserve_requests_running{path}``: requests the workers run at once (up to ``max_batch_size`` each).
- ``litserve_queue_depth{path}``: requests waiting for a worker beyond those (what ``max_queue_size`` bounds).
- ``litserve_workers{path}``: worker processes serving the API.
- ``litserve_requests_in_flight_per_worker{path}``: in flight divided by workers, the autoscaling signal.
- ``litserve_worker_restarts_total{path}``: workers restarted after they died.
- ``litserve_logger_dropped_entries_total{path}``: ``LitAPI.log`` entries dropped because the loggers fell behind.

The load gauges are exact with several API processes: each API process writes, on every change (not on a
timer), how many requests it holds for each worker; ``/metrics`` adds these up per worker before splitting
them into running and waiting, so a worker sent requests by two API processes is seen whole.
"""

from __future__ import annotations

import asyncio
import mmap
import os
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from litserve.transport.worker_channel import WorkItem

TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
CLIENT_CLOSED = 499  # nginx's code for a client that left before the response started

_FIRST_STATUS = 100
_STATUSES = 500  # 100..599
_SLOT = 8  # bytes of one float64


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
        self._values = memoryview(bytearray(routes * LAYOUT.block * _SLOT)).cast("d")
        self._mapped: Optional[Tuple[mmap.mmap, memoryview]] = None

    @property
    def values(self) -> memoryview:
        return self._values

    def open(self, name: str) -> ProcessMetrics:
        """Back the values by ``<directory>/<name>.metrics``; a restarted process continues its file."""
        if self.directory is None:
            return self
        size = len(self._values) * _SLOT
        fd = os.open(os.path.join(self.directory, f"{name}.metrics"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            mapped = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        view = memoryview(mapped)
        values = view.cast("d")
        for i, value in enumerate(self._values):
            if value:
                values[i] += value
        self._values, self._mapped = values, (mapped, view)
        return self

    def close(self) -> None:
        if self._mapped is None:
            return
        mapped, view = self._mapped
        values, self._mapped = self._values, None
        self._values = memoryview(bytearray(len(values) * _SLOT)).cast("d")
        values.release()
        view.release()
        mapped.close()

    # --- recording ---------------------------------------------------------------------------------

    def count_request(self, route: int, status: int, seconds: float) -> None:
        values = self._values
        base = route * LAYOUT.block
        if _FIRST_STATUS <= status < _FIRST_STATUS + _STATUSES:
            values[base + LAYOUT.requests + status - _FIRST_STATUS] += 1.0
        start = base + LAYOUT.duration
        values[start + bisect_left(TIME_BUCKETS, seconds)] += 1.0
        values[start + len(TIME_BUCKETS) + 1] += seconds

    def count_started(self, route: int, submitted: Iterable[float], batch_size: int) -> None:
        """A worker starts a batch of ``batch_size`` requests sent at ``submitted`` (``time.monotonic()``)."""
        now = time.monotonic()
        values = self._values
        base = route * LAYOUT.block
        start = base + LAYOUT.queue_wait
        total = 0.0
        for sent_at in submitted:
            wait = now - sent_at if now > sent_at else 0.0
            values[start + bisect_left(TIME_BUCKETS, wait)] += 1.0
            total += wait
        values[start + len(TIME_BUCKETS) + 1] += total
        start = base + LAYOUT.batch_size
        values[start + bisect_left(BATCH_BUCKETS, batch_size)] += 1.0
        values[start + len(BATCH_BUCKETS) + 1] += batch_size

    def count_restart(self, route: int) -> None:
        self._values[route * LAYOUT.block + LAYOUT.restarts] += 1.0

    def count_log_drop(self, route: int) -> None:
        self._values[route * LAYOUT.block + LAYOUT.log_drops] += 1.0

    def add_held(self, route: int, worker_id: int, delta: float) -> None:
        """An API process took on (+1) or let go of (-1) a request of ``route`` for worker ``worker_id``."""
        values = self._values
        values[route * LAYOUT.block + LAYOUT.in_flight] += delta
        values[self.routes * LAYOUT.block + worker_id] += delta

    def open_api_process(self, api_server: int, workers: int) -> None:
        """Called as an API process starts: its counts go to its own file, with a slot for each worker."""
        if self._mapped is None and workers > self.workers:
            grown = memoryview(bytearray((self.routes * LAYOUT.block + workers) * _SLOT)).cast("d")
            grown[: len(self._values)] = self._values
            self._values, self.workers = grown, workers
        self.open(f"api-{api_server}")

    def instrument(self, route: int, endpoint: Callable) -> InstrumentedEndpoint:
        return InstrumentedEndpoint(endpoint, route, self)


class WorkerMetrics:
    """What a worker records: how long each request waited for it, how many ran together, how many run now."""

    def __init__(self, directory: str, worker_id: int, route: int) -> None:
        self.route = route
        self.directory = directory
        self.worker_id = worker_id
        self._metrics = ProcessMetrics(route + 1, directory).open(f"worker-{worker_id}")

    def started(self, items: List[WorkItem]) -> None:
        self._metrics.count_started(self.route, [item.submitted for item in items], len(items))

    def count_log_drop(self) -> None:
        self._metrics.count_log_drop(self.route)

    def close(self) -> None:
        self._metrics.close()


class InstrumentedEndpoint:
    """Wraps a predict endpoint (ASGI) to count its requests by status and time them."""

    __slots__ = ("endpoint", "route", "metrics")

    def __init__(self, endpoint: Callable, route: int, metrics: ProcessMetrics) -> None:
        self.endpoint = endpoint
        self.route = route
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        status = CLIENT_CLOSED

        def send_and_note(message: dict) -> Any:
            # A plain function returning ``send``'s awaitable: no extra coroutine per message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.endpoint(scope, receive, send_and_note)
        except asyncio.CancelledError:
            raise  # cancelled by the server (shutdown): counted as a client that got no answer
        except BaseException:
            if status == CLIENT_CLOSED:
                status = 500  # what uvicorn answers for an exception before the response started
            raise
        finally:
            self.metrics.count_request(self.route, status, time.perf_counter() - started)


# --- reading and rendering -------------------------------------------------------------------------


def read_totals(directory: str, routes: int, workers: int = 0) -> List[float]:
    """The sum, slot by slot, of every process's file in ``directory`` (shorter files count as zeros)."""
    from array import array

    totals = [0.0] * (routes * LAYOUT.block + workers)
    for name in os.listdir(directory):
        if not name.endswith(".metrics"):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as file:
                data = file.read(len(totals) * _SLOT)
        except OSError:
            continue
        values = array("d")
        values.frombytes(data[: len(data) - len(data) % _SLOT])
        for i, value in enumerate(values):
            if value:
                totals[i] += value
    return totals


def render(
    totals: Sequence[float],
    paths: Sequence[str],
    accept: Optional[str],
    workers: Optional[WorkerLayout] = None,
    extra: Sequence[Any] = (),
) -> Tuple[bytes, str]:
    """Prometheus exposition of ``totals`` and the ``extra`` metric families (text format, or OpenMetrics if
    the scraper asks): (body, type).

    ``workers``: which workers serve each route and how many requests each runs at once, when known; the
    load gauges need it.
    """
    from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.exposition import choose_encoder

    requests = CounterMetricFamily("litserve_requests", "Requests answered, by HTTP status.", labels=["path", "code"])
    duration = _HistogramFamily("litserve_request_duration_seconds", "Time from arrival to the last byte sent.")
    queue_wait = _HistogramFamily("litserve_queue_wait_seconds", "Time from hand-off to a worker until it started.")
    batch = _HistogramFamily("litserve_batch_size", "Requests in each batch given to predict.")
    in_flight = GaugeMetricFamily(
        "litserve_requests_in_flight", "Requests accepted and not yet answered, waiting or running.", labels=["path"]
    )
    running = GaugeMetricFamily(
        "litserve_requests_running", "Requests the workers run at once (up to max_batch_size each).", labels=["path"]
    )
    depth = GaugeMetricFamily("litserve_queue_depth", "Requests waiting for a worker.", labels=["path"])
    worker_count = GaugeMetricFamily("litserve_workers", "Worker processes serving the API.", labels=["path"])
    per_worker = GaugeMetricFamily(
        "litserve_requests_in_flight_per_worker",
        "Requests waiting or running per worker: the autoscaling signal.",
        labels=["path"],
    )
    restarts = CounterMetricFamily("litserve_worker_restarts", "Workers restarted after they died.", labels=["path"])
    log_drops = CounterMetricFamily(
        "litserve_logger_dropped_entries", "LitAPI.log entries dropped: the loggers fell behind.", labels=["path"]
    )
    for route, path in enumerate(paths):
        base = route * LAYOUT.block
        for index in range(_STATUSES):
            count = totals[base + LAYOUT.requests + index]
            if count:
                requests.add_metric([path, str(_FIRST_STATUS + index)], count)
        duration.add(path, totals, base + LAYOUT.duration, TIME_BUCKETS)
        queue_wait.add(path, totals, base + LAYOUT.queue_wait, TIME_BUCKETS)
        batch.add(path, totals, base + LAYOUT.batch_size, BATCH_BUCKETS)
        held = totals[base + LAYOUT.in_flight]
        in_flight.add_metric([path], held)
        if workers is not None:
            route_workers, run_at_once = workers.route_workers[route], workers.run_at_once[route]
            per_worker_held = [totals[len(paths) * LAYOUT.block + w] for w in route_workers]
            runs = sum(min(count, run_at_once) for count in per_worker_held)
            running.add_metric([path], runs)
            depth.add_metric([path], held - runs)
            worker_count.add_metric([path], len(route_workers))
            per_worker.add_metric([path], held / max(1, len(route_workers)))
        restarts.add_metric([path], totals[base + LAYOUT.restarts])
        log_drops.add_metric([path], totals[base + LAYOUT.log_drops])
    families = [requests, duration.family, queue_wait.family, batch.family, in_flight]
    if workers is not None:
        families += [running, depth, worker_count, per_worker]
    families += [restarts, log_drops, *extra]

    class _Collector:
        def collect(self) -> Iterable[Any]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


class WorkerLayout:
    """Which workers serve each route, and how many requests each of them runs at once."""

    def __init__(self, route_workers: Sequence[Sequence[int]], run_at_once: Sequence[int]) -> None:
        self.route_workers = route_workers
        self.run_at_once = run_at_once

    @property
    def count(self) -> int:
        return sum(len(workers) for workers in self.route_workers)


class _HistogramFamily:
    def __init__(self, name: str, documentation: str) -> None:
        from prometheus_client.core import HistogramMetricFamily

        self.family = HistogramMetricFamily(name, documentation, labels=["path"])

    def add(self, path: str, totals: Sequence[float], start: int, bounds: Sequence[float]) -> None:
        cumulative = 0.0
        buckets = []
        for i, bound in enumerate(bounds):
            cumulative += totals[start + i]
            buckets.append((_float_label(bound), cumulative))
        cumulative += totals[start + len(bounds)]
        buckets.append(("+Inf", cumulative))
        self.family.add_metric([path], buckets, sum_value=totals[start + len(bounds) + 1])


def _float_label(value: float) -> str:
    return repr(float(value))


def metrics_route(
    paths: Sequence[str], metrics: ProcessMetrics, runtime: Any, extra: Sequence[Callable] = ()
) -> Callable:
    """The ``GET /metrics`` handler of one API process (the app's outer layer asks for the API key).

    ``extra``: functions of the metrics directory that return more metric families (an LLM API's).
    """
    from starlette.requests import Request
    from starlette.responses import Response

    async def serve_metrics(request: Request) -> Response:
        dispatcher = runtime.dispatcher
        workers = dispatcher.worker_layout() if dispatcher is not None else None
        if workers is not None and len(workers.route_workers) != len(paths):
            workers = None  # not started by LitServer.run: no workers to report on
        if metrics.directory:
            totals = read_totals(metrics.directory, len(paths), workers.count if workers is not None else 0)
        else:
            totals = list(metrics.values)
        families = [family for source in extra for family in source(metrics.directory)]
        body, content_type = render(totals, paths, request.headers.get("accept"), workers, families)
        return Response(body, media_type=content_type)

    return serve_metrics
