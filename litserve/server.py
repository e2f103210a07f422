"""LitServer: validates options, assembles the app and runs the API and worker processes."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from litserve import auth, lifecycle
from litserve.api import LitAPI
from litserve.api_servers import ApiServers
from litserve.app import build_app
from litserve.callbacks import EventTypes
from litserve.client_file import write_client_file
from litserve.config import ServerConfig
from litserve.http_protocol import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
)
from litserve.log_format import configure_default_logging, user_log_config
from litserve.loggers import LoggerProcess
from litserve.metrics import ProcessMetrics
from litserve.options import (
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_TIMEOUT,
    UNSET,
    ApiOptions,
)
from litserve.request_callbacks import RequestObserver
from litserve.routes import Runtime
from litserve.startup_warnings import ineffective_run_options
from litserve.transport.messages import Endpoints
from litserve.workers.process import WorkerSpec

logger = logging.getLogger("litserve")


class LitServer:
    """Serves one or more ``LitAPI``s over HTTP, each on worker processes of its own.

    Args:
        lit_api: a LitAPI, or a list of them (each on its own ``api_path``).
        accelerator: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"gpu"`` or ``"mps"``.
        devices: ``"auto"``, a number of devices, or a list of device ids.
        workers_per_device: worker processes per device: an int for every API, a list (one per API, in
            order) or a dict keyed by ``api_path``.
        timeout: seconds after arrival before a request gets 504; ``False`` or ``-1`` disables it.
        max_batch_size, batch_timeout, stream, spec, api_path, loop: defaults for APIs that do not set them
            (``loop=ContinuousBatchingLoop()`` serves ``add_request``/``step`` hooks; see ``litserve.loops``).
        healthcheck_path, info_path: paths of the readiness and info endpoints.
        model_metadata: anything JSON-serializable, shown at ``info_path``.
        max_payload_size: largest request body in bytes (or a string like ``"10MB"``); larger ones get 413.
        middlewares: ASGI middleware classes, or ``(cls, kwargs)`` pairs, wrapped around the app.
        restart_workers: restart a worker that dies; when False, a dead worker stops the server.
        max_queue_size: requests of one API that may wait for a worker in each API process; past it, new
            requests get 503 with ``Retry-After`` at once. ``None`` removes the limit.
        shutdown_timeout: seconds in-flight requests and streams get to finish after SIGTERM or Ctrl-C;
            those still running then get 503 (or their stream ends) and the server exits.
        metrics_path: path of the Prometheus metrics endpoint; ``None`` turns metrics off.
        callbacks: a ``litserve.Callback`` or a list of them (see ``litserve.callbacks``).
        loggers: a ``litserve.Logger`` or a list of them; ``LitAPI.log(key, value)`` reaches each one.
        track_requests: count the requests being answered (``active_requests``, passed to ``on_request``).
        enable_shutdown_api: ``POST shutdown_path`` with ``Authorization: Bearer $LIT_SHUTDOWN_API_KEY``
            stops the server as SIGTERM does (the variable must be set).
        shutdown_path: path of the shutdown API.
        disable_openapi_url: remove ``/openapi.json`` and ``/docs``.
        request_header_timeout: seconds a client gets to send a request's line and headers, however slowly
            they trickle; then it gets 408 and the connection closes. ``None`` turns the limit off.
        request_body_timeout: seconds a request body may stop arriving before the client gets 408 and the
            connection closes; such a request never reaches a worker. ``None`` turns the limit off.

    Example::

        server = LitServer(SquareAPI(), accelerator="cpu", max_batch_size=8, batch_timeout=0.01)
        server.run(port=8000)
    """

    def __init__(
        self,
        lit_api: Union[LitAPI, Sequence[LitAPI]],
        accelerator: str = "auto",
        devices: Union[str, int, List[int]] = "auto",
        workers_per_device: Union[int, List[int], Dict[str, int]] = 1,
        timeout: Union[float, bool] = DEFAULT_TIMEOUT,
        max_batch_size: Optional[int] = None,
        batch_timeout: float = UNSET,
        stream: bool = UNSET,
        spec: Any = None,
        api_path: Optional[str] = None,
        healthcheck_path: str = "/health",
        info_path: str = "/info",
        model_metadata: Any = None,
        max_payload_size: Union[int, str, None] = None,
        middlewares: Optional[list] = None,
        restart_workers: bool = True,
        max_queue_size: Optional[int] = DEFAULT_MAX_QUEUE_SIZE,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        metrics_path: Optional[str] = "/metrics",
        loop: Any = "auto",
        callbacks: Any = None,
        loggers: Any = None,
        fast_queue: Optional[bool] = None,
        track_requests: bool = False,
        enable_shutdown_api: bool = False,
        shutdown_path: str = "/shutdown",
        disable_openapi_url: bool = False,
        request_header_timeout: Optional[float] = DEFAULT_HEADER_TIMEOUT_S,
        request_body_timeout: Optional[float] = DEFAULT_BODY_TIMEOUT_S,
    ) -> None:
        self.config = ServerConfig.create(
            lit_api, accelerator=accelerator, devices=devices, workers_per_device=workers_per_device,
            timeout=timeout, max_batch_size=max_batch_size, batch_timeout=batch_timeout, stream=stream, spec=spec,
            api_path=api_path, healthcheck_path=healthcheck_path, info_path=info_path, model_metadata=model_metadata,
            max_payload_size=max_payload_size, middlewares=middlewares, restart_workers=restart_workers,
            max_queue_size=max_queue_size, shutdown_timeout=shutdown_timeout, metrics_path=metrics_path, loop=loop,
            callbacks=callbacks, loggers=loggers, fast_queue=fast_queue, track_requests=track_requests,
            enable_shutdown_api=enable_shutdown_api, shutdown_path=shutdown_path,
            disable_openapi_url=disable_openapi_url, request_header_timeout=request_header_timeout,
            request_body_timeout=request_body_timeout,
        )  # fmt: skip
        config = self.config
        self.lit_apis = list(config.lit_apis)
        self.api_options: List[ApiOptions] = list(config.api_options)
        self.middlewares = list(config.middlewares)
        self._pretty_logs = False  # run(pretty_logs=True) sets it
        self._runtime = Runtime()
        self._early_signals: Optional[lifecycle.EarlySignals] = None  # while run() runs
        self._observer = None
        if config.callbacks is not None or config.track_requests:
            self._observer = RequestObserver(config.callbacks, self, config.track_requests)
        if config.metrics_path is not None:
            self._runtime.metrics = ProcessMetrics(len(config.lit_apis))
        self.app, self._lit_app = build_app(config, self._runtime, self._observer)

    def __getattr__(self, name: str) -> Any:
        # LitServe-compatible attributes (``server.timeout``, ``server.devices``, ...) read the config.
        config = self.__dict__.get("config")
        if config is not None and not name.startswith("_") and name in ServerConfig.__dataclass_fields__:
            return getattr(config, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def active_requests(self) -> Optional[int]:
        """Requests the server is answering, across its API processes; None unless ``track_requests=True``."""
        return self._observer.active_requests if self._observer is not None else None

    # --- public ------------------------------------------------------------------------------------

    def run(
        self,
        host: str = "0.0.0.0",
        port: Union[int, str] = 8000,
        num_api_servers: Optional[int] = None,
        log_level: str = "info",
        generate_client_file: bool = True,
        api_server_worker_type: Optional[str] = None,
        pretty_logs: bool = False,
        access_log: bool = True,
        **uvicorn_options: Any,
    ) -> None:
        """Start the workers and the HTTP server; returns when the server stops.

        ``num_api_servers`` uvicorn processes share the port (default 1); API servers are always processes
        (``api_server_worker_type`` is accepted for LitServe compatibility). ``pretty_logs`` colours the log
        with rich. ``access_log`` logs one line per request, as uvicorn does (``127.0.0.1:50000 - "POST
        /predict HTTP/1.1" 200 OK``, at info level, logger ``uvicorn.access``). The port listens before the
        first start-up line; requests that arrive before the workers finished ``setup`` wait for them (up to
        ``timeout``). Logs ``ready: N workers in X s`` once they have. Exits the process with status 1 if a
        worker's ``setup`` fails or the port cannot be used.
        """
        started_at = time.monotonic()
        if api_server_worker_type not in (None, "process", "thread"):
            raise ValueError(f"api_server_worker_type must be 'process' or 'thread', got {api_server_worker_type!r}")
        port = _check_port(port)
        num_api_servers = 1 if num_api_servers is None else num_api_servers
        if not isinstance(num_api_servers, int) or isinstance(num_api_servers, bool) or num_api_servers < 1:
            raise ValueError(f"num_api_servers must be an integer >= 1, got {num_api_servers!r}")
        self._pretty_logs = bool(pretty_logs)
        uvicorn_options["access_log"] = bool(access_log)
        # From here on a SIGINT or SIGTERM is never lost nor a traceback, however early in the start-up it comes.
        with lifecycle.EarlySignals() as self._early_signals:
            self._serve(host, port, num_api_servers, log_level, generate_client_file, api_server_worker_type,
                        uvicorn_options, started_at)  # fmt: skip

    # --- internals ---------------------------------------------------------------------------------

    def _serve(
        self,
        host: str,
        port: int,
        num_api_servers: int,
        log_level: str,
        generate_client_file: bool,
        api_server_worker_type: Optional[str],
        uvicorn_options: Dict[str, Any],
        started_at: float,
    ) -> None:
        configure_default_logging(log_level, self._pretty_logs)
        run_warnings = ineffective_run_options(api_server_worker_type, uvicorn_options)
        for warning in [*self.config.startup_warnings, *run_warnings]:
            logger.warning(warning)
        api_key = auth.api_key_from_env()
        self._runtime.authenticate = auth.api_key_checker(api_key) if api_key else None
        if generate_client_file:
            write_client_file(port, self.lit_apis, self.api_options)

        sock = lifecycle.listen(host, port, uvicorn_options)  # exits with a clear line if the port is taken
        self._runtime.main_pid = os.getpid()
        if self._observer is not None:
            self._observer.share_counts(num_api_servers)
        if self.config.callbacks is not None:
            self.config.callbacks.trigger_event(EventTypes.ON_SERVER_START.value, litserver=self)
        logger_process = LoggerProcess(self.config.loggers) if self.config.loggers else None
        if logger_process is not None:
            logger_process.start()
        endpoints = Endpoints.create()
        log_queue = logger_process.queue if logger_process is not None else None
        inboxes, specs, metrics_dir = self._prepare_workers(endpoints, num_api_servers, log_level, log_queue)
        self._log_banner(sock, specs, num_api_servers)
        supervisor_metrics = ProcessMetrics(len(self.lit_apis), metrics_dir).open("supervisor")
        servers = ApiServers(
            self.config, self._runtime, self._observer, self._asgi_app(), self._early_signals, self._pretty_logs,
            started_at,
        )  # fmt: skip
        try:
            failed = servers.run(sock, log_level, uvicorn_options, specs, inboxes, supervisor_metrics, num_api_servers)
        finally:
            sock.close()
            supervisor_metrics.close()
            endpoints.cleanup()
            if logger_process is not None:
                logger_process.stop()
            if self.config.callbacks is not None:
                self.config.callbacks.trigger_event(EventTypes.ON_SERVER_END.value, litserver=self)
        if failed:
            sys.exit(1)

    def _prepare_workers(
        self, endpoints: Endpoints, num_api_servers: int, log_level: str, log_queue: Any = None
    ) -> Tuple[List[str], List[WorkerSpec], Optional[str]]:
        """Bind the API processes' inboxes and describe every worker: (inboxes, worker specs, metrics dir)."""
        inboxes = [endpoints.api_inbox(i) for i in range(num_api_servers)]
        self._runtime.listeners = endpoints.listen(num_api_servers)
        metrics_dir = self._metrics_dir(endpoints)
        specs = self._worker_specs(endpoints, inboxes, log_level, metrics_dir, log_queue)
        self._runtime.route_workers = [
            [spec.worker_id for spec in specs if spec.api_index == i] for i in range(len(self.lit_apis))
        ]
        return inboxes, specs, metrics_dir

    def _asgi_app(self) -> Any:
        app = self._lit_app
        for middleware in reversed(self.middlewares):
            cls, kwargs = middleware if isinstance(middleware, tuple) else (middleware, {})
            app = cls(app, **kwargs)
        return app

    def _metrics_dir(self, endpoints: Endpoints) -> Optional[str]:
        if self.metrics_path is None:
            return None
        directory = os.path.join(endpoints.base_dir, "metrics")
        os.makedirs(directory, exist_ok=True)
        self._runtime.metrics.directory = directory
        return directory

    def _worker_specs(
        self,
        endpoints: Endpoints,
        inboxes: List[str],
        log_level: str,
        metrics_dir: Optional[str],
        log_queue: Any = None,
    ) -> List[WorkerSpec]:
        specs = []
        for api_index, (lit_api, opts) in enumerate(zip(self.lit_apis, self.api_options)):
            for device in self.devices:
                for _ in range(self.config.workers_per_api[api_index]):
                    worker_id = len(specs)
                    specs.append(
                        WorkerSpec(
                            worker_id=worker_id,
                            api_index=api_index,
                            device=device,
                            lit_api=lit_api,
                            options=opts,
                            api_inboxes=inboxes,
                            log_level=log_level,
                            metrics_dir=metrics_dir,
                            pretty_logs=self._pretty_logs,
                            callbacks=self.config.callbacks,
                            log_queue=log_queue,
                            log_config=user_log_config(),
                        )
                    )
        return specs

    def _log_banner(self, sock: Any, specs: List[WorkerSpec], num_api_servers: int) -> None:
        """Logged once the socket listens: every line is true when it is read."""
        url = lifecycle.address(sock)
        logger.info("litserve: listening on %s%s", url, lifecycle.where_to_connect(sock))
        for api_index, (api, opts) in enumerate(zip(self.lit_apis, self.api_options)):
            devices = [spec.device for spec in specs if spec.api_index == api_index]
            logger.info(
                "litserve: %s at %s on %d worker(s) [%s]",
                type(api).__name__,
                opts.api_path,
                len(devices),
                ", ".join(devices),
            )
        logger.info(
            "litserve: %d API server process(es); health at %s; starting workers (Press CTRL+C to quit)",
            num_api_servers,
            self.healthcheck_path,
        )


def _check_port(port: Union[int, str]) -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"port must be an integer between 1 and 65535, got {port!r}") from None
    if not 0 < value < 65536:
        raise ValueError(f"port must be an integer between 1 and 65535, got {port!r}")
    return value
