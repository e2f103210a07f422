"""uvicorn's Server, adjusted for a process that drains on a signal, then cleans up after itself."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from typing import Callable, Generator, List, Optional

import uvicorn

from litserve.lifecycle import EarlySignals

logger = logging.getLogger("litserve")


class UvicornServer(uvicorn.Server):
    """Shuts down gracefully on SIGINT/SIGTERM and then returns normally.

    Plain uvicorn re-raises the signal after shutting down, which turns Ctrl-C into a traceback and
    SIGTERM into an abrupt exit that skips stopping the workers.

    Args:
        config: uvicorn's config; its ``timeout_graceful_shutdown`` is uvicorn's own last resort.
        shutdown_timeout: seconds in-flight requests get once shutdown begins; then ``on_shutdown_timeout``.
        on_shutdown: called when shutdown begins (the listening socket closes at the same time).
        on_shutdown_timeout: called when ``shutdown_timeout`` has passed and requests are still running.
        parent_pid: shut down at once, without grace, if this process's parent is no longer ``parent_pid``.
        early_signals: signals that came before this server handled them (``lifecycle.EarlySignals``): acted
            on as soon as it does.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        shutdown_timeout: Optional[float] = None,
        on_shutdown: Optional[Callable[[], None]] = None,
        on_shutdown_timeout: Optional[Callable[[], None]] = None,
        parent_pid: Optional[int] = None,
        early_signals: Optional[EarlySignals] = None,
    ) -> None:
        super().__init__(config)
        self.early_signals = early_signals
        self.shutdown_timeout = shutdown_timeout
        self.on_shutdown = on_shutdown
        self.on_shutdown_timeout = on_shutdown_timeout
        self.parent_pid = parent_pid

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in self.early_signals.received if self.early_signals is not None else ():
            self.handle_exit(sig, None)
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def on_tick(self, counter: int) -> bool:
        if self.parent_pid is not None and not self.should_exit and os.getppid() != self.parent_pid:
            # The workers died with it: answer what is held at once, then exit.
            logger.error("the main litserve process is gone; this API server exits too")
            self.shutdown_timeout = 0.0
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: Optional[List] = None) -> None:
        if self.on_shutdown is not None:
            self.on_shutdown()
        deadline = None
        if self.on_shutdown_timeout is not None and self.shutdown_timeout is not None and not self.force_exit:
            deadline = asyncio.get_running_loop().call_later(self.shutdown_timeout, self.on_shutdown_timeout)
        try:
            await super().shutdown(sockets)
        finally:
            if deadline is not None:
                deadline.cancel()
