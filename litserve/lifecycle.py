"""Start-up and readiness: the listening socket before any start-up line, one line once workers are ready, and
no stop signal lost while the server starts."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from typing import Any, Dict, List

logger = logging.getLogger("litserve")

DEFAULT_BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int, uvicorn_options: Dict[str, Any]) -> socket.socket:
    """Bind and listen on ``host:port`` now, so that anyone who reads a start-up line can connect at once.

    Connections made before the HTTP server runs wait in the kernel's backlog, not refused. A port that is
    taken (or a host that is not this machine's) is logged as one clear line, then the process exits with 1.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(int(uvicorn_options.get("backlog", DEFAULT_BACKLOG)))
    except OSError as exc:
        sock.close()
        logger.error("cannot listen on %s: %s", _format_address(host, port), exc.strerror or exc)
        sys.exit(1)
    sock.set_inheritable(True)
    return sock


def address(sock: socket.socket, scheme: str = "http") -> str:
    """The address the socket really listens on, such as ``http://0.0.0.0:8000``."""
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{_format_address(host, port)}"


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def where_to_connect(sock: socket.socket, scheme: str = "http") -> str:
    """A note for wildcard addresses: they are not an address to open, a loopback one is."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", "::"):
        loopback = "127.0.0.1" if host == "0.0.0.0" else "[::1]"
        return f" (all interfaces; on this machine: {scheme}://{loopback}:{port})"
    return ""


def announce_when_ready(supervisor: Any, worker_count: int, started_at: float) -> threading.Thread:
    """Log ``ready: N workers in X s`` once every worker finished ``setup`` (nothing if the server stops first)."""

    def wait_and_log() -> None:
        if supervisor.wait_until_ready():
            noun = "worker" if worker_count == 1 else "workers"
            logger.info("ready: %d %s in %.1f s", worker_count, noun, time.monotonic() - started_at)

    thread = threading.Thread(target=wait_and_log, name="litserve-ready", daemon=True)
    thread.start()
    return thread


class EarlySignals:
    """Keeps SIGINT and SIGTERM that arrive while ``run()`` starts, for the HTTP server to act on.

    uvicorn handles signals once its event loop runs. Before that, a SIGINT raised KeyboardInterrupt in the
    middle of the start-up (a traceback), or was lost where it is ignored: a background job of a
    non-interactive shell (``python server.py &`` in a script) starts with SIGINT ignored, and the first
    ``kill -INT`` did nothing. While entered, this records them; the HTTP server replays them the moment it
    handles signals (``received``), so the server stops as for any later signal. Leaving it restores the
    handlers that were there before.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: List[int] = []
        self._previous: Dict[int, Any] = {}

    def __enter__(self) -> EarlySignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._record) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _record(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
