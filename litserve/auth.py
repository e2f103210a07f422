"""API-key authentication: ``LIT_SERVER_API_KEY`` checked against ``X-API-Key`` or a bearer token, on every
route but liveness and readiness. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from litserve.codec import detail_error_body

API_KEY_ENV = "LIT_SERVER_API_KEY"
# What a request without a valid key is told (401).
MISSING_API_KEY_MESSAGE = "Invalid or missing API key: send it in the X-API-Key header"

Headers = List[Tuple[bytes, bytes]]


def api_key_from_env() -> Optional[str]:
    """The configured key, or None when the variable is unset or empty."""
    return os.environ.get(API_KEY_ENV) or None


def api_key_checker(api_key: str) -> Callable[[Headers], bool]:
    """A check that accepts ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (what OpenAI SDKs send).

    Keys are compared in constant time.
    """
    expected = api_key.encode()

    def authenticate(headers: Headers) -> bool:
        for name, value in headers:
            if name == b"x-api-key":
                if hmac.compare_digest(value, expected):
                    return True
            elif name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected):
                    return True
        return False

    return authenticate


class ApiKeyLayer:
    """The outermost ASGI layer of the app: with an API key configured, every path needs it, except those
    in ``open_paths`` (liveness and readiness) and ``self_checked_paths`` (routes that check credentials
    themselves: predict endpoints, which count their 401s, and routes with a LitAPI ``authorize`` hook).

    Routes mounted later (specs, MCP, loggers, anything added to the FastAPI app) are covered without being
    listed anywhere. ``error_bodies`` maps a path prefix to how errors there are worded (OpenAI's shape
    under ``/v1/``); the first match wins. ``authenticate`` is read per request from ``runtime``.
    """

    def __init__(
        self,
        app: Callable,
        runtime: Any,
        open_paths: Iterable[str],
        self_checked_paths: Iterable[str] = (),
        error_bodies: Sequence[Tuple[str, Callable[[int, Any], bytes]]] = (),
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.unchecked = frozenset(open_paths) | frozenset(self_checked_paths)
        self.error_bodies = list(error_bodies)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        authenticate = self.runtime.authenticate
        if (
            authenticate is None
            or scope["type"] not in ("http", "websocket")
            or scope["path"] in self.unchecked
            or authenticate(scope["headers"])
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "Invalid or missing API key"})
            return
        body = self._error_body(scope["path"])(401, MISSING_API_KEY_MESSAGE)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _error_body(self, path: str) -> Callable[[int, Any], bytes]:
        for prefix, error_body in self.error_bodies:
            if path.startswith(prefix):
                return error_body
        return detail_error_body


class _RedactKey(logging.Filter):
    """Replaces the API key with ``***`` in any record that contains it (a debug log of request headers)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.key in message:
            record.msg, record.args = message.replace(self.key, "***"), ()
        return True


def keep_out_of_logs(key: Optional[str]) -> None:
    """Redact ``key`` from everything the handlers configured so far write (uvicorn's, litserve's, the root's).

    uvicorn's websocket protocol logs handshake headers at debug level, ``X-API-Key`` included.
    """
    if not key:
        return
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict))]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, _RedactKey) and f.key == key for f in handler.filters):
                handler.addFilter(_RedactKey(key))
