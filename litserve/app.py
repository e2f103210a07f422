"""Assembling the ASGI application: fast predict routes in front, FastAPI for everything else."""

# No ``from __future__ import annotations`` here: FastAPI must see the real request model in annotations.
import contextlib
import socket
from typing import Any, Dict, List, Optional, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.responses import Response

from litserve.api import LitAPI, request_annotation, response_annotation
from litserve.auth import ApiKeyLayer
from litserve.codec import PLAIN_ERRORS, ErrorFormat
from litserve.metrics import ProcessMetrics, metrics_route
from litserve.options import ApiOptions
from litserve.request_callbacks import ObservedPredictEndpoint, RequestObserver
from litserve.routes import PredictEndpoint, Runtime
from litserve.transport.dispatcher import Dispatcher
from litserve.workers.loops import requests_run_at_once

STREAM_ALIAS_PATH = "/stream-predict"
# Liveness: 200 while the API process's event loop runs, whatever the workers do (``/health`` is readiness).
LIVENESS_PATH = "/livez"


class LitApp:
    """ASGI entry point: predict routes skip FastAPI's per-request machinery; the rest goes to FastAPI."""

    def __init__(self, fastapi_app: FastAPI, fast_routes: Dict[str, PredictEndpoint]) -> None:
        self.fastapi_app = fastapi_app
        self.fast_routes = fast_routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            endpoint = self.fast_routes.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.fastapi_app(scope, receive, send)


class _EndpointResponse(Response):
    """Lets a FastAPI route (one with dependencies, such as ``authorize``) hand the request to an endpoint."""

    def __init__(self, endpoint: PredictEndpoint) -> None:
        self.endpoint = endpoint
        self.background = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.endpoint(scope, receive, send)


class ServerProcessState:
    """What one API process needs at start-up to reach the workers."""

    def __init__(self) -> None:
        self.api_server = 0
        self.listeners: List[socket.socket] = []  # one per API process, bound before any process starts
        self.route_workers: List[List[int]] = []
        self.metrics: Optional[ProcessMetrics] = None
        self.draining = False  # shutting down: finishing in-flight requests, not ready for new ones


def build_app(
    lit_apis: List[LitAPI],
    options: List[ApiOptions],
    runtime: Runtime,
    process_state: ServerProcessState,
    timeout: Optional[float],
    max_payload_size: Optional[int],
    max_queue_size: Optional[int],
    healthcheck_path: str,
    info_path: str,
    info: Dict[str, Any],
    metrics_path: Optional[str] = None,
    observer: Optional[RequestObserver] = None,
    disable_openapi_url: bool = False,
    self_checked_paths: Sequence[str] = (),
) -> tuple:
    """Returns (FastAPI app, the ASGI app to serve). Routes are registered on the FastAPI app so they appear in
    ``/docs``; the API key guards everything the served app reaches, routes added to the FastAPI app later too.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        dispatcher = Dispatcher(
            process_state.api_server,
            process_state.route_workers,
            queue_limits=[max_queue_size] * len(options),
            run_at_once=[requests_run_at_once(lit_api, opts) for lit_api, opts in zip(lit_apis, options)],
            count_held=process_state.metrics.add_held if process_state.metrics is not None else None,
        )
        await dispatcher.start(process_state.listeners[process_state.api_server])
        runtime.dispatcher = dispatcher
        if process_state.metrics is not None:
            workers = sum(len(route) for route in process_state.route_workers)
            process_state.metrics.open_api_process(process_state.api_server, workers)
        try:
            async with mcp_endpoint.running() if mcp_endpoint is not None else contextlib.nullcontext():
                yield
        finally:
            if process_state.metrics is not None:
                process_state.metrics.close()
            dispatcher.stop()

    app = FastAPI(title="litserve", lifespan=lifespan, openapi_url=None if disable_openapi_url else "/openapi.json")
    fast_routes: Dict[str, PredictEndpoint] = {}
    # Only a server with request callbacks (or request tracking) pays for them.
    endpoint_class = PredictEndpoint if observer is None else ObservedPredictEndpoint.observed_by(observer)
    authorized_paths: List[str] = []  # a LitAPI's own ``authorize`` checks these
    error_bodies = []

    for route, (lit_api, opts) in enumerate(zip(lit_apis, options)):
        spec = opts.spec
        # A LitAPI's own ``authorize`` replaces the API-key check.
        authorize = getattr(lit_api, "authorize", None)
        endpoint_options = {
            "stream": spec.may_stream if spec is not None else opts.stream,
            "check_api_key": authorize is None,
        }

        def make_endpoint(path: str = "", route: int = route, options: dict = endpoint_options, spec=spec) -> Any:
            error_format = spec.error_format_for(path) if spec is not None and path else _error_format(spec)
            endpoint = endpoint_class(
                route,
                runtime,
                timeout,
                max_payload_size,
                error_format=error_format,
                path=path,
                **options,
            )
            if process_state.metrics is not None:
                endpoint = process_state.metrics.instrument(route, endpoint)
            return endpoint

        paths = list(spec.api_paths) if spec is not None else [opts.api_path]
        if spec is None and opts.stream and opts.api_path == "/predict":
            paths.append(STREAM_ALIAS_PATH)
        for path in paths:
            endpoint = make_endpoint(path)
            if authorize is not None:
                _add_authorized_route(app, path, endpoint, authorize)
                authorized_paths.append(path)
            else:
                fast_routes[path] = endpoint
                _add_documented_route(app, path, lit_api, spec)
        for path in spec.extra_routes if spec is not None else []:
            if path in fast_routes or any(getattr(r, "path", None) == path for r in app.routes):
                continue  # several APIs with this spec: the first one serves the extra path
            if authorize is not None:
                _add_authorized_route(app, path, make_endpoint(path), authorize)
            else:
                fast_routes[path] = make_endpoint(path)
        if spec is not None:
            spec.add_routes(app, runtime, lit_apis)
            if opts.api_path.startswith("/v1/"):
                error_bodies.append(("/v1/", spec.error_body))

    @app.get(healthcheck_path, include_in_schema=False)
    async def health() -> Response:
        dispatcher = runtime.dispatcher
        if process_state.draining:
            return PlainTextResponse("shutting down", status_code=503)
        if dispatcher is not None and dispatcher.all_workers_ready() and all(api.health() for api in lit_apis):
            return PlainTextResponse("ok")
        return PlainTextResponse("not ready", status_code=503)

    if all(opts.api_path != "/" for opts in options) and not any(getattr(r, "path", None) == "/" for r in app.routes):

        @app.get("/", include_in_schema=False)
        async def index() -> Response:
            return PlainTextResponse("litserve running")

    @app.get(LIVENESS_PATH, include_in_schema=False)
    async def liveness() -> Response:
        return PlainTextResponse("alive")

    if metrics_path is not None and process_state.metrics is not None:
        paths = [opts.api_path for opts in options]
        extra = [opts.spec.metric_families for opts in options if opts.spec is not None]
        serve_metrics = metrics_route(paths, process_state.metrics, runtime, extra)
        app.add_route(metrics_path, serve_metrics, methods=["GET"], include_in_schema=False)

    @app.get(info_path, include_in_schema=False)
    async def server_info() -> Response:
        return JSONResponse(info)

    # Paths whose endpoints check the API key themselves (MCP tool calls go through them, so it does not).
    self_checked_paths = [*self_checked_paths, *fast_routes, *authorized_paths]
    mcp_endpoint = _mcp_endpoint(lit_apis, options, fast_routes)
    lit_app = LitApp(app, fast_routes)
    if mcp_endpoint is not None:
        mcp_endpoint.app = lit_app  # tool calls go through the API's own route
    served = ApiKeyLayer(
        lit_app,
        runtime,
        open_paths=[healthcheck_path, LIVENESS_PATH, *_public_paths(options)],
        self_checked_paths=self_checked_paths,
        error_bodies=error_bodies,
    )
    return app, served


def _mcp_endpoint(lit_apis: List[LitAPI], options: List[ApiOptions], fast_routes: Dict[str, Any]) -> Any:
    """The ``/mcp/`` endpoint when some API has ``mcp=MCP(...)``, else None."""
    if all(getattr(api, "mcp", None) is None for api in lit_apis):
        return None
    from litserve.mcp import MCP_PATHS, McpEndpoint, collect_tools

    endpoint = McpEndpoint(collect_tools(lit_apis, [opts.api_path for opts in options]))
    for path in MCP_PATHS:
        fast_routes[path] = endpoint
    return endpoint


def _public_paths(options: List[ApiOptions]) -> List[str]:
    """Paths specs serve without the API key (static pages that hold no data)."""
    return [path for opts in options if opts.spec is not None for path in getattr(opts.spec, "public_paths", [])]


def _error_format(spec: Any) -> ErrorFormat:
    """How errors of a route are shaped: the spec's way (OpenAI's ``{"error": ...}``), else ``{"detail": ...}``."""
    return spec if spec is not None else PLAIN_ERRORS


def _add_documented_route(app: FastAPI, path: str, lit_api: LitAPI, spec: Any) -> None:
    """Describe a fast route in the OpenAPI schema; requests never reach this FastAPI handler."""
    if spec is not None:
        request_model, response_model = spec.request_model_for(path), None
    else:
        request_model = _pydantic_model(request_annotation(lit_api))
        response_model = _pydantic_model(response_annotation(lit_api))

    if request_model is not None:

        async def documented(body: request_model) -> Any:  # type: ignore[valid-type]
            raise RuntimeError("served by litserve's predict endpoint")

        openapi_extra = None
    else:

        async def documented(request: Request) -> Any:
            raise RuntimeError("served by litserve's predict endpoint")

        openapi_extra = {
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        }
    app.add_api_route(
        path,
        documented,
        methods=["POST"],
        response_model=response_model,
        openapi_extra=openapi_extra,
        name=f"{type(lit_api).__name__}{path.replace('/', '_')}",
    )


def _add_authorized_route(app: FastAPI, path: str, endpoint: PredictEndpoint, authorize: Any) -> None:
    async def authorized(request: Request) -> Response:
        return _EndpointResponse(endpoint)

    app.add_api_route(path, authorized, methods=["POST"], dependencies=[Depends(authorize)])


def _pydantic_model(annotation: Any) -> Optional[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None
