"""The HTTP side of a running server: one uvicorn API server in this process, or several forked ones.

Beside the worker ``Supervisor`` (which it starts and stops): ``LitServer.run`` builds the config and the
app, then hands both here. Shutdown drains: readiness turns 503, held requests get 503 at
``shutdown_timeout``, and uvicorn's own grace is a last resort a little after it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

from litserve import auth, lifecycle
from litserve.config import ServerConfig
from litserve.http_protocol import guarded_protocol
from litserve.log_format import pretty_uvicorn_log_config
from litserve.metrics import ProcessMetrics
from litserve.routes import Runtime
from litserve.supervisor import Supervisor
from litserve.uvicorn_server import UvicornServer

logger = logging.getLogger("litserve")

# Extra seconds uvicorn waits after shutdown_timeout, so the 503s sent at shutdown_timeout reach the clients.
_SHUTDOWN_MARGIN_S = 2.0


class ApiServers:
    """Runs the API server process(es) of one ``LitServer`` and the workers' supervisor until shutdown."""

    def __init__(
        self,
        config: ServerConfig,
        runtime: Runtime,
        observer: Any,
        asgi_app: Any,
        early_signals: Optional[lifecycle.EarlySignals],
        pretty_logs: bool,
        started_at: float,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.observer = observer
        self.asgi_app = asgi_app
        self.early_signals = early_signals
        self.pretty_logs = pretty_logs
        self.started_at = started_at  # when run() began: the ready line reports the time since

    def run(
        self,
        sock: Any,
        log_level: str,
        uvicorn_options: Dict[str, Any],
        specs: List[Any],
        inboxes: List[str],
        metrics: ProcessMetrics,
        count: int = 1,
    ) -> bool:
        """Start the workers and ``count`` API servers on ``sock``; return once stopped, True if it failed."""
        config = self._uvicorn_config(sock, log_level, uvicorn_options)
        if count == 1:
            return self._run_single(config, sock, specs, inboxes, metrics)
        return self._run_multi(config, sock, specs, inboxes, metrics, count)

    def _uvicorn_config(self, sock: Any, log_level: str, uvicorn_options: Dict[str, Any]) -> Any:
        import uvicorn

        host, port = sock.getsockname()[:2]
        # uvicorn's own limit is a last resort: at shutdown_timeout, held requests are answered with 503.
        grace = self.config.shutdown_timeout + _SHUTDOWN_MARGIN_S
        options = {"loop": "auto", "http": "auto", "timeout_graceful_shutdown": grace}
        options.update(uvicorn_options)
        # uvicorn has no deadline for a request still arriving: slow or stalled clients are closed by ours.
        options["http"] = guarded_protocol(
            options["http"], self.config.request_header_timeout, self.config.request_body_timeout
        )
        if self.pretty_logs:
            options.setdefault("log_config", pretty_uvicorn_log_config())
        config = uvicorn.Config(self.asgi_app, host=host, port=port, log_level=log_level, **options)
        auth.keep_out_of_logs(auth.api_key_from_env())  # uvicorn's log handlers exist from here on
        return config

    def _http_server(self, config: Any, parent_pid: Optional[int] = None) -> UvicornServer:
        return UvicornServer(
            config,
            shutdown_timeout=self.config.shutdown_timeout,
            on_shutdown=self._begin_draining,
            on_shutdown_timeout=self._answer_held_requests,
            parent_pid=parent_pid,
            early_signals=self.early_signals,
        )

    def _begin_draining(self) -> None:
        """Shutdown began: the listening socket is closed, and readiness reports 503."""
        self.runtime.draining = True

    def _answer_held_requests(self) -> None:
        dispatcher = self.runtime.dispatcher
        if dispatcher is not None:
            count = dispatcher.fail_all("The server is shutting down")
            if count:
                logger.warning("shutdown_timeout passed: answered %d request(s) still running with 503", count)

    def _run_single(self, config: Any, sock: Any, specs: list, inboxes: list, metrics: ProcessMetrics) -> bool:
        server = self._http_server(config)

        def stop_server(reason: str) -> None:
            server.should_exit = True

        supervisor = Supervisor(
            specs, inboxes, on_fatal=stop_server, restart_workers=self.config.restart_workers, metrics=metrics
        )
        self.runtime.api_server = 0
        if self.observer is not None:
            self.observer.api_server = 0
        supervisor.start()
        lifecycle.announce_when_ready(supervisor, len(specs), self.started_at)
        try:
            server.run(sockets=[sock])
        finally:
            supervisor.stop()
        return supervisor.fatal_error is not None

    def _run_multi(
        self, config: Any, sock: Any, specs: list, inboxes: list, metrics: ProcessMetrics, count: int
    ) -> bool:
        # Fork before this process starts any thread or socket, so each API server inherits the app as built.
        context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
        api_processes = []
        for index in range(count):
            process = context.Process(
                target=self._serve_api_process, args=(index, config, sock, os.getpid()), daemon=False
            )
            process.start()
            api_processes.append(process)
        # Only the API servers listen: once they close the socket on shutdown, new connections are refused.
        sock.close()
        for listener in self.runtime.listeners:
            listener.close()  # each API process took its own
        fatal: List[str] = []
        supervisor = Supervisor(
            specs, inboxes, on_fatal=fatal.append, restart_workers=self.config.restart_workers, metrics=metrics
        )
        supervisor.start()
        lifecycle.announce_when_ready(supervisor, len(specs), self.started_at)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        wakeup_r, wakeup_w = os.pipe()

        def on_signal(signum: int, frame: Any) -> None:
            os.write(wakeup_w, b"x")

        for sig in previous:
            signal.signal(sig, on_signal)
        if self.early_signals is not None and self.early_signals.received:
            os.write(wakeup_w, b"x")  # it came while the server was starting: stop now
        try:
            from multiprocessing.connection import wait

            while not fatal:
                ready = wait([wakeup_r, *(p.sentinel for p in api_processes)], timeout=0.5)
                if wakeup_r in ready:
                    break
                exited = [p for p in api_processes if not p.is_alive()]
                if exited and all(p.exitcode == 0 for p in exited):
                    break  # it drained after a signal sent to the whole process group: so do we
                if exited:
                    logger.error("an API server process exited; stopping the server")
                    fatal.append("API server exited")
                    break
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for process in api_processes:
                if process.is_alive():
                    process.terminate()  # each API server drains its requests, then exits
            give_up_at = time.monotonic() + self.config.shutdown_timeout + 2 * _SHUTDOWN_MARGIN_S
            for process in api_processes:
                process.join(timeout=max(0.0, give_up_at - time.monotonic()))
                if process.is_alive():
                    process.kill()
            supervisor.stop()
            os.close(wakeup_r)
            os.close(wakeup_w)
        return bool(fatal)

    def _serve_api_process(self, index: int, config: Any, sock: Any, parent_pid: int) -> None:
        self.runtime.api_server = index
        if self.observer is not None:
            self.observer.api_server = index
        for other, listener in enumerate(self.runtime.listeners):
            if other != index:
                listener.close()
        self._http_server(config, parent_pid=parent_pid).run(sockets=[sock])
