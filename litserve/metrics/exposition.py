"""Prometheus exposition of the server's totals (and of extra families such as the LLM engine's)."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence, Tuple

from litserve.metrics.server import _FIRST_STATUS, _STATUSES, BATCH_BUCKETS, LAYOUT, TIME_BUCKETS, WorkerLayout


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


class _HistogramFamily:
    def __init__(self, name: str, documentation: str) -> None:
        from prometheus_client.core import HistogramMetricFamily

        self.family = HistogramMetricFamily(name, documentation, labels=["path"])

    def add(self, path: str, totals: Sequence[float], start: int, bounds: Sequence[float]) -> None:
        buckets, total = histogram_buckets(totals, start, bounds)
        self.family.add_metric([path], buckets, sum_value=total)


def histogram_buckets(totals: Sequence[float], start: int, bounds: Sequence[float]) -> Tuple[list, float]:
    """Prometheus ``(buckets, sum)`` of a histogram stored as a count per bound, +Inf, then the sum."""
    cumulative = 0.0
    buckets = []
    for i, bound in enumerate(bounds):
        cumulative += totals[start + i]
        buckets.append((repr(float(bound)), cumulative))
    cumulative += totals[start + len(bounds)]
    buckets.append(("+Inf", cumulative))
    return buckets, totals[start + len(bounds) + 1]
