"""LitServe's ASGI middlewares, for ``LitServer(middlewares=[...])``; any other ASGI middleware works too.

```python
LitServer(api, middlewares=[(MaxSizeMiddleware, {"max_size": 1_000_000}), CORSMiddleware])
```

Each entry is a middleware class, or a ``(class, kwargs)`` pair; the first entry is the outermost. This
module loads no web framework until a middleware is built (worker processes import the user's script).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, List, Optional

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

__all__ = ["MaxSizeMiddleware", "RequestCountMiddleware", "check_middlewares"]


class MaxSizeMiddleware:
    """Answer 413 to a request whose body is larger than ``max_size`` bytes (``None``: no limit).

    Reading stops as soon as the body passes the limit, whether or not it declared its length. Predict
    routes answer in their own error shape (OpenAI's on ``/v1``), other routes with ``{"detail": ...}``.
    """

    def __init__(self, app: Any, *, max_size: Optional[int] = None) -> None:
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"max_size must be a number of bytes (an integer >= 0) or None, got {max_size!r}")
        from litserve.routes import PayloadTooLargeError

        self.app = app
        self.max_size = max_size
        self._too_large = PayloadTooLargeError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_size
        if scope["type"] != "http" or limit is None:
            await self.app(scope, receive, send)
            return
        size = 0
        started = False

        async def receive_within_limit() -> dict:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > limit:
                raise self._too_large(limit)
            return message

        async def send_tracking_start(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_within_limit, send_tracking_start)
        except self._too_large:
            if not started:  # a route that let the error through; predict routes answer it themselves
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send: Send, limit: int) -> None:
        from litserve.routes import send_too_large

        await send_too_large(send, limit)


class RequestCountMiddleware:
    """Count the requests being answered in ``active_counter`` (a ``multiprocessing.Value``), as LitServe does.

    ``/``, ``/health`` and ``/metrics`` are not counted. Share one counter across API processes by creating it
    before ``run()``: ``multiprocessing.Value("i", 0)``.
    """

    UNCOUNTED_PATHS = ("/", "/health", "/metrics")

    def __init__(self, app: Any, active_counter: Any) -> None:
        self.app = app
        self.active_counter = active_counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.UNCOUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        self._add(1)
        try:
            await self.app(scope, receive, send)
        finally:
            self._add(-1)

    def _add(self, amount: int) -> None:
        counter = self.active_counter
        get_lock = getattr(counter, "get_lock", None)
        if get_lock is None:
            counter.value += amount
            return
        with get_lock():
            counter.value += amount


def check_middlewares(middlewares: Any) -> List[Any]:
    """``LitServer``'s ``middlewares``: a list of classes or ``(class, kwargs)`` pairs (None: none)."""
    if middlewares is None:
        return []
    if not isinstance(middlewares, list):
        raise ValueError(
            "middlewares must be a list of middleware classes or (class, kwargs) tuples, "
            f"e.g. middlewares=[(MaxSizeMiddleware, {{'max_size': 1000}})]; got {middlewares!r}"
        )
    for entry in middlewares:
        if isinstance(entry, tuple):
            if len(entry) != 2 or not callable(entry[0]) or not isinstance(entry[1], dict):
                raise ValueError(f"a middleware tuple must be (class, kwargs dict), got {entry!r}")
        elif not callable(entry):
            raise ValueError(f"a middleware must be a class (or a (class, kwargs) tuple), got {entry!r}")
    return list(middlewares)
