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

Modules: ``slots`` (the shared-memory primitive, also used by ``litserve.llm.metrics``), ``server`` (what the
server's processes record), ``asgi`` (the endpoint wrapper), ``exposition`` (Prometheus text), ``route`` (the
``/metrics`` handler).
"""

from litserve.metrics.asgi import CLIENT_CLOSED, InstrumentedEndpoint
from litserve.metrics.exposition import render
from litserve.metrics.route import metrics_route
from litserve.metrics.server import (
    BATCH_BUCKETS,
    LAYOUT,
    TIME_BUCKETS,
    Layout,
    ProcessMetrics,
    WorkerLayout,
    WorkerMetrics,
    read_totals,
)

__all__ = [
    "BATCH_BUCKETS",
    "CLIENT_CLOSED",
    "LAYOUT",
    "TIME_BUCKETS",
    "InstrumentedEndpoint",
    "Layout",
    "ProcessMetrics",
    "WorkerLayout",
    "WorkerMetrics",
    "metrics_route",
    "read_totals",
    "render",
]
