"""Assembling the ASGI application: fast predict routes in front, FastAPI for everything else."""

# No ``from __future__ import annotations`` here: FastAPI must see the real request model in annotations.
import contextlib
from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, AsyncIterator, Dict, List, Optional, Sequence

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.responses import Response

from litserve import admin
from litserve.api import LitAPI, request_annotation, response_annotation
from litserve.auth import ApiKeyLayer
from litserve.codec import PLAIN_ERRORS, ErrorFormat
from litserve.config import LIVENESS_PATH, ServerConfig
from litserve.loggers import mounts
from litserve.metrics import metrics_route
from litserve.options import ApiOptions
from litserve.request_callbacks import ObservedPredictEndpoint, RequestObserver
from litserve.request_example import pydantic_model
from litserve.routes import PredictEndpoint, Runtime
from litserve.transport.dispatcher import Dispatcher

__all__ = ["LIVENESS_PATH", "STREAM_ALIAS_PATH", "ApiRoutes", "LitApp", "Lifespan", "build_app"]

STREAM_ALIAS_PATH = "/stream-predict"


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


class Lifespan:
    """An API process's start-up and shutdown, as FastAPI's ``lifespan``: connect to the workers (the
    dispatcher), open this process's metrics and run the MCP endpoint while the process serves."""

    def __init__(self, config: ServerConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.mcp_endpoint: Any = None  # set once the routes are known: it serves through them

    def __call__(self, app: FastAPI) -> AsyncContextManager[None]:
        return self._serving()

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        runtime, metrics = self.runtime, self.runtime.metrics
        dispatcher = Dispatcher(
            runtime.api_server,
            runtime.route_workers,
            queue_limits=[self.config.max_queue_size] * len(self.config.api_options),
            run_at_once=list(self.config.run_at_once),
            count_held=metrics.add_held if metrics is not None else None,
        )
        await dispatcher.start(runtime.listeners[runtime.api_server])
        runtime.dispatcher = dispatcher
        if metrics is not None:
            metrics.open_api_process(runtime.api_server, sum(len(route) for route in runtime.route_workers))
        try:
            async with self.mcp_endpoint.running() if self.mcp_endpoint is not None else contextlib.nullcontext():
                yield
        finally:
            if metrics is not None:
                metrics.close()
            dispatcher.stop()


@dataclass
class ApiRoutes:
    """The routes of the LitAPIs: ``fast`` ones served ahead of FastAPI, the rest registered on it."""

    fast: Dict[str, Any] = field(default_factory=dict)
    authorized_paths: List[str] = field(default_factory=list)  # a LitAPI's own ``authorize`` checks these
    error_bodies: List[Any] = field(default_factory=list)  # (path prefix, error body) of specs' routes


def build_app(config: ServerConfig, runtime: Runtime, observer: Optional[RequestObserver] = None) -> tuple:
    """Returns (FastAPI app, the ASGI app to serve). Routes are registered on the FastAPI app so they appear in
    ``/docs``; the API key guards everything the served app reaches, routes added to the FastAPI app later too.
    """
    lifespan = Lifespan(config, runtime)
    app = FastAPI(
        title="litserve", lifespan=lifespan, openapi_url=None if config.disable_openapi_url else "/openapi.json"
    )
    routes = add_api_routes(app, config, runtime, observer)
    add_server_routes(app, config, runtime)
    # Paths whose endpoints check the API key themselves (MCP tool calls go through them, so it does not);
    # the shutdown API checks its own key (LIT_SHUTDOWN_API_KEY).
    shutdown_paths = [config.shutdown_path] if config.shutdown_path is not None else []
    self_checked_paths = [*shutdown_paths, *routes.fast, *routes.authorized_paths]
    lifespan.mcp_endpoint = _mcp_endpoint(config, routes.fast)
    lit_app = LitApp(app, routes.fast)
    if lifespan.mcp_endpoint is not None:
        lifespan.mcp_endpoint.app = lit_app  # tool calls go through the API's own route
    served = ApiKeyLayer(
        lit_app,
        runtime,
        open_paths=[config.healthcheck_path, LIVENESS_PATH, *_public_paths(config.api_options)],
        self_checked_paths=self_checked_paths,
        error_bodies=routes.error_bodies,
    )
    if config.shutdown_path is not None:
        admin.add_shutdown_route(app, config.shutdown_path, config.shutdown_api_key, lambda: runtime.main_pid)
    admin.mount_apps(app, mounts(config.loggers))
    return app, served


def add_api_routes(
    app: FastAPI, config: ServerConfig, runtime: Runtime, observer: Optional[RequestObserver] = None
) -> ApiRoutes:
    """Add each LitAPI's routes (its ``api_path``, or its spec's paths) to ``app``; returns where they went."""
    routes = ApiRoutes()
    # Only a server with request callbacks (or request tracking) pays for them.
    endpoint_class = PredictEndpoint if observer is None else ObservedPredictEndpoint.observed_by(observer)
    lit_apis = list(config.lit_apis)
    for route, (lit_api, opts) in enumerate(zip(lit_apis, config.api_options)):
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
                route, runtime, config.timeout, config.max_payload_size, error_format=error_format, path=path, **options
            )
            if runtime.metrics is not None:
                endpoint = runtime.metrics.instrument(route, endpoint)
            return endpoint

        paths = list(spec.api_paths) if spec is not None else [opts.api_path]
        if spec is None and opts.stream and opts.api_path == "/predict":
            paths.append(STREAM_ALIAS_PATH)
        for path in paths:
            _add_route(app, routes, path, make_endpoint(path), authorize)
            if authorize is None:
                _add_documented_route(app, path, lit_api, spec)
        for path in spec.extra_routes if spec is not None else []:
            if path in routes.fast or any(getattr(r, "path", None) == path for r in app.routes):
                continue  # several APIs with this spec: the first one serves the extra path
            _add_route(app, routes, path, make_endpoint(path), authorize)
        if spec is not None:
            spec.add_routes(app, runtime, lit_apis)
            if opts.api_path.startswith("/v1/"):
                routes.error_bodies.append(("/v1/", spec.error_body))
    return routes


def add_server_routes(app: FastAPI, config: ServerConfig, runtime: Runtime) -> None:
    """The server's own routes: readiness (``healthcheck_path``), liveness, ``/``, metrics and ``info_path``."""
    lit_apis = config.lit_apis

    @app.get(config.healthcheck_path, include_in_schema=False)
    async def health() -> Response:
        dispatcher = runtime.dispatcher
        if runtime.draining:
            return PlainTextResponse("shutting down", status_code=503)
        if dispatcher is not None and dispatcher.all_workers_ready() and all(api.health() for api in lit_apis):
            return PlainTextResponse("ok")
        return PlainTextResponse("not ready", status_code=503)

    api_options = config.api_options
    if all(opts.api_path != "/" for opts in api_options) and not any(
        getattr(r, "path", None) == "/" for r in app.routes
    ):

        @app.get("/", include_in_schema=False)
        async def index() -> Response:
            return PlainTextResponse("litserve running")

    @app.get(LIVENESS_PATH, include_in_schema=False)
    async def liveness() -> Response:
        return PlainTextResponse("alive")

    if config.metrics_path is not None and runtime.metrics is not None:
        paths = [opts.api_path for opts in api_options]
        extra = [opts.spec.metric_families for opts in api_options if opts.spec is not None]
        serve_metrics = metrics_route(paths, runtime.metrics, runtime, extra)
        app.add_route(config.metrics_path, serve_metrics, methods=["GET"], include_in_schema=False)

    info = config.info()

    @app.get(config.info_path, include_in_schema=False)
    async def server_info() -> Response:
        return JSONResponse(info)


def _add_route(app: FastAPI, routes: ApiRoutes, path: str, endpoint: Any, authorize: Any) -> None:
    if authorize is not None:
        _add_authorized_route(app, path, endpoint, authorize)
        routes.authorized_paths.append(path)
    else:
        routes.fast[path] = endpoint


def _mcp_endpoint(config: ServerConfig, fast_routes: Dict[str, Any]) -> Any:
    """The ``/mcp/`` endpoint when some API has ``mcp=MCP(...)``, else None."""
    if all(getattr(api, "mcp", None) is None for api in config.lit_apis):
        return None
    from litserve.mcp import MCP_PATHS, McpEndpoint, collect_tools

    endpoint = McpEndpoint(collect_tools(list(config.lit_apis), [opts.api_path for opts in config.api_options]))
    for path in MCP_PATHS:
        fast_routes[path] = endpoint
    return endpoint


def _public_paths(options: Sequence[ApiOptions]) -> List[str]:
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
        request_model = pydantic_model(request_annotation(lit_api))
        response_model = pydantic_model(response_annotation(lit_api))

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
