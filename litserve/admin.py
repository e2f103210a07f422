"""Admin routes: the shutdown API (``enable_shutdown_api``) and apps mounted by loggers."""

from __future__ import annotations

import hmac
import os
import signal
from typing import Any, Callable, List, Optional, Tuple

SHUTDOWN_API_KEY_ENV = "LIT_SHUTDOWN_API_KEY"
SHUTDOWN_STARTED_MESSAGE = "Server is initiating graceful shutdown."
INVALID_SHUTDOWN_KEY_MESSAGE = (
    "Invalid Bearer token for Shutdown API. Check that you are passing a correct "
    f"'Authorization: Bearer <{SHUTDOWN_API_KEY_ENV}>' in your header."
)


def shutdown_api_key() -> str:
    """The shutdown API's key from the environment; a clear error when it is missing."""
    key = os.environ.get(SHUTDOWN_API_KEY_ENV)
    if not key:
        raise ValueError(
            f"enable_shutdown_api=True needs the {SHUTDOWN_API_KEY_ENV} environment variable: set it to a secret, "
            f"then stop the server with: curl -X POST -H 'Authorization: Bearer ${SHUTDOWN_API_KEY_ENV}' "
            "http://HOST:PORT/shutdown"
        )
    return key


def bearer_token_matches(authorization: Optional[bytes], expected: bytes) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <expected>``; compared in constant time."""
    if authorization is None:
        return False
    scheme, _, token = authorization.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)


def add_shutdown_route(app: Any, path: str, api_key: str, main_pid: Callable[[], int]) -> None:
    """``POST path`` with the right bearer token stops the server exactly as SIGTERM to ``main_pid()`` does."""
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response

    expected = api_key.encode()

    async def shutdown(request: Request) -> Response:
        authorization = next((value for name, value in request.scope["headers"] if name == b"authorization"), None)
        if not bearer_token_matches(authorization, expected):
            return JSONResponse({"detail": INVALID_SHUTDOWN_KEY_MESSAGE}, 401, {"www-authenticate": "Bearer"})
        # Signalled once the answer is sent: the drain then waits for other requests, not for this one.
        return PlainTextResponse(
            SHUTDOWN_STARTED_MESSAGE, background=BackgroundTask(os.kill, main_pid(), signal.SIGTERM)
        )

    app.add_route(path, shutdown, methods=["POST"], include_in_schema=False)


def mount_apps(app: Any, apps: List[Tuple[str, Any]]) -> None:
    """Serve each ``(path, ASGI app)`` under ``path`` (what ``Logger.mount`` asked for)."""
    for path, asgi_app in apps:
        app.mount(path, asgi_app)
