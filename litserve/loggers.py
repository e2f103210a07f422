"""Loggers: ``LitAPI.log(key, value)`` in a worker reaches every ``Logger.process`` in a process of their own.

Workers put entries on one bounded queue and never wait for it: when it is full the entry is dropped and
counted (``litserve_logger_dropped_entries_total`` in ``/metrics``). A logger process takes the entries off
the queue and hands each to every logger in turn; a logger that raises is logged and keeps getting entries.

Example::

    class PrintLogger(ls.Logger):
        def process(self, key, value):
            print(f"{key}: {value}")

    class MyAPI(ls.LitAPI):
        def predict(self, x):
            self.log("input", x)
            return x

    ls.LitServer(MyAPI(), loggers=PrintLogger()).run()
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import pickle
import queue
import signal
import time
from abc import ABC, abstractmethod
from typing import Any, List, Optional, Sequence, Tuple

logger = logging.getLogger("litserve")

# Entries waiting for the loggers; past this, new ones are dropped rather than slowing requests down.
LOG_QUEUE_SIZE = 10_000
_DROP_WARNING_INTERVAL_S = 10.0
_STOP_TIMEOUT_S = 5.0


class Logger(ABC):
    """Base class of loggers: implement ``process``; optionally ``mount`` an ASGI app (say, a metrics page)."""

    def __init__(self) -> None:
        self._config: dict = {}

    def mount(self, path: str, app: Any) -> None:
        """Serve the ASGI ``app`` at ``path`` in every API process of the server this logger is given to."""
        self._config["mount"] = {"path": path, "app": app}

    @abstractmethod
    def process(self, key: str, value: Any) -> None:
        """Handle one entry logged by ``LitAPI.log(key, value)``. Runs in the logger process."""
        raise NotImplementedError


def check_loggers(loggers: Any) -> List[Logger]:
    """The ``loggers=`` argument of LitServer as a list; a clear error for anything that is not a Logger."""
    if loggers is None:
        return []
    items = list(loggers) if isinstance(loggers, (list, tuple)) else [loggers]
    for item in items:
        if not isinstance(item, Logger):
            raise ValueError(f"loggers must be litserve.Logger instances, got {item!r}")
    return items


def mounts(loggers: Sequence[Logger]) -> List[Tuple[str, Any]]:
    """The (path, ASGI app) pairs the loggers asked to serve."""
    found = []
    for item in loggers:
        mount = getattr(item, "_config", {}).get("mount")
        if mount is not None:
            found.append((mount["path"], mount["app"]))
    return found


class LogSink:
    """A worker's end of the log queue: never blocks; counts what it had to drop."""

    def __init__(self, log_queue: Any, metrics: Any = None) -> None:
        self.queue = log_queue
        self.metrics = metrics
        self.dropped = 0
        self._warned_at = -_DROP_WARNING_INTERVAL_S

    def put(self, key: str, value: Any) -> None:
        try:
            self.queue.put_nowait((key, value))
        except queue.Full:
            self.dropped += 1
            if self.metrics is not None:
                self.metrics.count_log_drop()
            now = time.monotonic()
            if now - self._warned_at >= _DROP_WARNING_INTERVAL_S:
                self._warned_at = now
                logger.warning("the loggers fall behind: dropped %d log entries so far in this worker", self.dropped)


class LoggerProcess:
    """Runs the loggers in a process of their own, fed by a bounded queue shared with the workers."""

    def __init__(self, loggers: Sequence[Logger], queue_size: int = LOG_QUEUE_SIZE) -> None:
        context = multiprocessing.get_context("spawn")
        self.queue = context.Queue(maxsize=queue_size)
        # Mounted apps stay in the API processes: they need not (and often cannot) be pickled.
        self._process = context.Process(
            target=run_loggers,
            args=([_portable(item) for item in loggers], self.queue, os.getpid()),
            name="litserve-loggers",
            daemon=True,
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        """Let the loggers finish what is queued (up to a few seconds), then end the process."""
        try:
            self.queue.put(None, timeout=_STOP_TIMEOUT_S)
        except (queue.Full, ValueError, OSError):
            pass
        self._process.join(_STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(_STOP_TIMEOUT_S)
        self.queue.close()


class _Rebuild:
    """Stands for a logger that cannot be pickled: the logger process makes a new one with ``cls()``."""

    def __init__(self, cls: type) -> None:
        self.cls = cls


def _portable(item: Logger) -> Any:
    """What the logger process gets for ``item``: a copy without its mounted app, or a ``_Rebuild``.

    Loggers often hold what cannot cross processes (locks in prometheus-client metrics): as in LitServe, such
    a logger is built again in the logger process by calling its class without arguments.
    """
    config = getattr(item, "_config", None)
    if config and "mount" in config:
        item = copy.copy(item)
        item._config = {key: value for key, value in config.items() if key != "mount"}
    try:
        pickle.dumps(item)
    except Exception as exc:
        logger.warning(
            "logger %s cannot be pickled (%s): the logger process builds its own with %s()",
            type(item).__name__,
            exc,
            type(item).__name__,
        )
        return _Rebuild(type(item))
    return item


def _built(items: Sequence[Any]) -> List[Logger]:
    loggers = []
    for item in items:
        if not isinstance(item, _Rebuild):
            loggers.append(item)
            continue
        try:
            loggers.append(item.cls())
        except Exception:
            logger.exception("could not build logger %s in the logger process; it gets no entries", item.cls.__name__)
    return loggers


def run_loggers(loggers: Sequence[Logger], log_queue: Any, parent_pid: Optional[int] = None) -> None:
    """Entry point of the logger process: every entry goes to every logger until ``None`` arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process stops us
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     [litserve loggers] %(message)s"))
        logger.addHandler(handler)
    loggers = _built(loggers)
    while True:
        try:
            entry = log_queue.get(timeout=1.0)
        except queue.Empty:
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # the server is gone
            continue
        if entry is None:
            return
        key, value = entry
        for item in loggers:
            try:
                item.process(key, value)
            except Exception:
                logger.exception("logger %s raised while processing %r; it keeps running", type(item).__name__, key)
