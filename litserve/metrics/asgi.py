"""The ASGI wrapper that counts a predict endpoint's requests by status and times them."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Callable

CLIENT_CLOSED = 499  # nginx's code for a client that left before the response started


class InstrumentedEndpoint:
    """Wraps a predict endpoint (ASGI) to count its requests by status and time them."""

    __slots__ = ("endpoint", "route", "metrics")

    def __init__(self, endpoint: Callable, route: int, metrics: Any) -> None:
        self.endpoint = endpoint
        self.route = route
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        started = time.perf_counter()
        status = CLIENT_CLOSED

        def send_and_note(message: dict) -> Any:
            # A plain function returning ``send``'s awaitable: no extra coroutine per message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        try:
            await self.endpoint(scope, receive, send_and_note)
        except asyncio.CancelledError:
            raise  # cancelled by the server (shutdown): counted as a client that got no answer
        except BaseException:
            if status == CLIENT_CLOSED:
                status = 500  # what uvicorn answers for an exception before the response started
            raise
        finally:
            self.metrics.count_request(self.route, status, time.perf_counter() - started)
