"""A LitServer served inside the calling process, for tests: ``TestClient(server.app)`` reaches real workers.

This is what ``litserve.utils.wrap_litserve_start`` (LitServe's test helper) does here: the worker processes
start as ``run()`` starts them, and ``server.app`` sends each request through the app ``run()`` serves (the
API-key check, the LitServer's ``middlewares``, the predict routes) instead of FastAPI's routes alone.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, List

from litserve import auth
from litserve.callbacks import EventTypes
from litserve.loggers import LoggerProcess
from litserve.metrics import ProcessMetrics
from litserve.supervisor import Supervisor
from litserve.transport.messages import Endpoints

logger = logging.getLogger("litserve")

# Set in a request's scope once it went through the served app, so FastAPI's own routes get it next.
_SERVED = "litserve.served_in_process"


class ServeThrough:
    """ASGI middleware on ``server.app``: requests go through ``served`` (which hands FastAPI the rest)."""

    def __init__(self, app: Any, served: Any) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get(_SERVED):
            await self.served({**scope, _SERVED: True}, receive, send)
        else:
            await self.app(scope, receive, send)


@contextlib.contextmanager
def started_in_process(server: Any) -> Iterator[Any]:
    """Start ``server``'s workers for the block (waiting for their ``setup``); stop them after it.

    Raises ``RuntimeError`` if a worker's ``setup`` fails (its traceback is in the log).
    """
    fatal: List[str] = []
    api_key = auth.api_key_from_env()
    server._runtime.authenticate = auth.api_key_checker(api_key) if api_key else None
    server._runtime.api_server = 0
    if server._observer is not None:
        server._observer.share_counts(1)
        server._observer.api_server = 0
    logger_process = LoggerProcess(server.config.loggers) if server.config.loggers else None
    if logger_process is not None:
        logger_process.start()
    endpoints = Endpoints.create()
    supervisor = None
    metrics = None
    try:
        log_queue = logger_process.queue if logger_process is not None else None
        inboxes, specs, metrics_dir = server._prepare_workers(endpoints, 1, "info", log_queue)
        metrics = ProcessMetrics(len(server.lit_apis), metrics_dir).open("supervisor")
        supervisor = Supervisor(
            specs, inboxes, on_fatal=fatal.append, restart_workers=server.restart_workers, metrics=metrics
        )
        if server.config.callbacks is not None:
            server.config.callbacks.trigger_event(EventTypes.ON_SERVER_START.value, litserver=server)
        supervisor.start()
        if not supervisor.wait_until_ready():
            raise RuntimeError(f"the server's workers did not start: {fatal[0] if fatal else 'stopped'}")
        _add_serve_through(server)
        try:
            yield server
        finally:
            _remove_serve_through(server)
    finally:
        if supervisor is not None:
            supervisor.stop()
        for listener in server._runtime.listeners:
            listener.close()
        if metrics is not None:
            metrics.close()
        endpoints.cleanup()
        if logger_process is not None:
            logger_process.stop()
        if server.config.callbacks is not None:
            server.config.callbacks.trigger_event(EventTypes.ON_SERVER_END.value, litserver=server)


def _add_serve_through(server: Any) -> None:
    app = server.app
    app.middleware_stack = None  # rebuilt with this middleware when the test client starts the app
    app.add_middleware(ServeThrough, served=server._asgi_app())


def _remove_serve_through(server: Any) -> None:
    app = server.app
    app.user_middleware = [middleware for middleware in app.user_middleware if middleware.cls is not ServeThrough]
    app.middleware_stack = None
