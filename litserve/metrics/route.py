"""``GET /metrics``: add up the processes' files and render them."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from litserve.metrics.exposition import render
from litserve.metrics.server import ProcessMetrics, read_totals


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
