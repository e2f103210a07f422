"""uvicorn's Server, adjusted for a process that must clean up after a signal."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Generator

import uvicorn


class UvicornServer(uvicorn.Server):
    """Shuts down gracefully on SIGINT/SIGTERM and then returns normally.

    Plain uvicorn re-raises the signal after shutting down, which turns Ctrl-C into a traceback and
    SIGTERM into an abrupt exit that skips stopping the workers.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
