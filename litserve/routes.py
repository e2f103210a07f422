"""The predict endpoint as a lean ASGI handler: check, read, enqueue, await, respond.

Parsing, validation and serialization happen in the worker; this process only moves bytes, so one
core can feed the workers on the others.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import socket
import time
from typing import Any, Callable, List, Optional, Tuple

from litserve import codec
from litserve.auth import MISSING_API_KEY_MESSAGE
from litserve.forms import form_to_dict
from litserve.transport.dispatcher import Dispatcher, Pending
from litserve.transport.messages import FORM_CONTENT_TYPE

logger = logging.getLogger("litserve")

Scope = dict
Receive = Callable[[], Any]
Send = Callable[[dict], Any]

JSON_HEADERS = [(b"content-type", b"application/json")]
JSON = "application/json"
URLENCODED = "application/x-www-form-urlencoded"
QUEUE_FULL_MESSAGE = "Server is busy: too many requests are waiting (max_queue_size). Retry later."
RETRY_AFTER_S = b"1"
MAX_CONTENT_TYPE_BYTES = 1024
# Marks a request whose client went away; nothing is sent for it.
_CLIENT_GONE = (None, None, b"", True)


class PayloadTooLargeError(Exception):
    """A request body passed ``limit`` bytes (the server's or a ``MaxSizeMiddleware``'s)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class Runtime:
    """What one API process holds at run time, shared by its routes: how to reach the workers, whether it is
    draining, how to check API keys. Set up by the main process before the API processes start, and by each
    API process's lifespan (``dispatcher``) when it starts."""

    def __init__(self) -> None:
        self.api_server = 0  # this API process's index
        self.main_pid = os.getpid()  # the process that runs the supervisor (``run()`` sets it again)
        self.listeners: List[socket.socket] = []  # one per API process, bound before any process starts
        self.route_workers: List[List[int]] = []  # worker ids of each API
        self.metrics: Any = None  # the process's ``ProcessMetrics``, when metrics are on
        self.draining = False  # shutting down: finishing in-flight requests, not ready for new ones
        self.dispatcher: Optional[Dispatcher] = None
        self.authenticate: Optional[Callable[[List[Tuple[bytes, bytes]]], bool]] = None


class PredictEndpoint:
    """Serves one API route: relays the request to a worker and the worker's reply to the client."""

    def __init__(
        self,
        route: int,
        runtime: Runtime,
        timeout: Optional[float],
        max_payload_size: Optional[int],
        stream: bool,
        check_api_key: bool = True,
        error_format: codec.ErrorFormat = codec.PLAIN_ERRORS,
        path: str = "",
    ) -> None:
        self.route = route
        self.path = path  # sent with each request: an API served on several paths tells them apart
        self.check_api_key = check_api_key
        self.error_format = error_format  # the path's error shape, also for errors the dispatcher answers
        self.runtime = runtime
        self.timeout = timeout
        self.max_payload_size = max_payload_size
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_reply(send, self.error(405, "Method Not Allowed", [(b"allow", b"POST")]))
            return
        headers = scope["headers"]
        authenticate = self.runtime.authenticate
        if authenticate is not None and self.check_api_key and not authenticate(headers):
            await send_reply(send, self.error(401, MISSING_API_KEY_MESSAGE))
            return
        if not self.runtime.dispatcher.has_room(self.route):
            # Admission control: answer at once, before reading the body, so overload costs next to nothing.
            await self.reject_busy(send)
            return
        content_type = b""
        content_length = None
        for name, value in headers:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        limit = self.max_payload_size
        if (
            limit is not None
            and content_length is not None
            and content_length.isdigit()
            and int(content_length) > limit
        ):
            await send_reply(send, self.error(413, _too_large_message(limit)))
            return
        try:
            kind = _body_kind(content_type)
        except ValueError as exc:
            await send_reply(send, self.error(400, str(exc)))
            return
        try:
            if kind == URLENCODED:
                # curl -d sends JSON with this type unless told otherwise: accept a body that is clearly JSON.
                body = await read_body(receive, limit)
                if body is not None and body[:1] not in (b"{", b"["):
                    body = _urlencoded_form(body)
                    kind = FORM_CONTENT_TYPE
                else:
                    kind = JSON
            elif kind == FORM_CONTENT_TYPE:
                body = await _read_form(scope, _within_limit(receive, limit))
            else:
                body = await read_body(receive, limit)
        except PayloadTooLargeError as exc:
            await send_reply(send, self.error(413, _too_large_message(exc.limit)))
            return
        except ValueError as exc:
            await send_reply(send, self.error(400, str(exc)))
            return
        if body is None:
            return  # client disconnected while sending
        if not body:
            await send_reply(send, self.error(400, "Request body is empty: send a JSON document"))
            return
        await self.serve(kind, body, receive, send)

    async def serve(self, content_type: str, body: bytes, receive: Receive, send: Send) -> None:
        dispatcher = self.runtime.dispatcher
        if not dispatcher.has_room(self.route):
            await self.reject_busy(send)  # the queue filled up while this body was read
            return
        timeout = self.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        pending = dispatcher.submit(self.route, content_type, body, deadline, self.stream, self.path, self.error_format)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(timeout, self._expire, pending) if timeout is not None else None
        watcher = loop.create_task(_watch_disconnect(receive, dispatcher, pending))
        try:
            first = await pending.future
        except asyncio.CancelledError:
            dispatcher.abandon(pending)
            watcher.cancel()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        status, headers, data, done = first
        if status is None:
            return
        if done:
            if self.stream and status == 200 and headers is None:
                headers = codec.TEXT_HEADERS
            await send_reply(send, (status, headers, data))
            return
        try:
            await self._relay_stream(pending, status, headers, data, send)
        finally:
            if not watcher.done():
                dispatcher.abandon(pending)

    async def reject_busy(self, send: Send) -> None:
        await send_reply(send, self.error(503, QUEUE_FULL_MESSAGE, [(b"retry-after", RETRY_AFTER_S)]))

    def error(self, status: int, detail: str, headers: Optional[list] = None) -> codec.Reply:
        return codec.error_reply(status, detail, headers, self.error_format.error_body)

    def _expire(self, pending: Pending) -> None:
        if pending.future.done():
            return  # streaming has started: the timeout covers the wait for the first item
        if self.runtime.dispatcher.abandon(pending):
            pending.future.set_result((*self.error(504, "Request timed out"), True))

    async def _relay_stream(self, pending: Pending, status: int, headers: Any, data: bytes, send: Send) -> None:
        headers = headers or codec.JSON_LINES_HEADERS
        await send({"type": "http.response.start", "status": status, "headers": headers})
        # Server-sent events are split by their own blank lines, so items that arrived together go out in one
        # write (fewer syscalls and client wake-ups). Other streams send one HTTP chunk per item: clients
        # commonly read a chunk at a time and parse it as one item, as LitServe's own examples do.
        coalesce = _is_event_stream(headers)
        stream = pending.stream
        parts = [data]
        chunks = stream.take_ready()
        first = True
        while True:
            done = False
            for status, _, data, finished in chunks:
                if status is None:
                    return  # the client is gone
                parts.append(data)
                if finished:
                    done = True
                    break
            bodies = [b"".join(parts)] if coalesce else [part for part in parts if part]
            last = bodies.pop() if bodies else b""
            for body in bodies:
                await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": last, "more_body": not done})
            if done:
                return
            if first:
                first = False
                # The first item is what a streaming client waits for. When busy processes outnumber the
                # cores, the reader this write woke (a client or proxy on this host) can otherwise wait a
                # whole scheduler slice while this process relays the rest: step aside once so it runs.
                _yield_cpu()
            parts = []
            chunks = await stream.next_batch()


def _is_event_stream(headers: Any) -> bool:
    return any(name == b"content-type" and value.startswith(b"text/event-stream") for name, value in headers)


# At most one step aside per interval: when many streams start at once, handing the loop's time slice away
# for each of them would slow the others down.
_YIELD_INTERVAL_S = 0.005
_last_yield = 0.0


def _yield_cpu() -> None:
    global _last_yield
    now = time.monotonic()
    if now - _last_yield >= _YIELD_INTERVAL_S and hasattr(os, "sched_yield"):
        _last_yield = now
        os.sched_yield()


async def send_reply(send: Send, reply: codec.Reply) -> None:
    """Send a complete (non-streamed) response."""
    status, headers, body = reply
    if headers is None:
        headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    elif not any(name == b"content-length" for name, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive, limit: Optional[int]) -> Optional[bytes]:
    """The whole request body, or None if the client disconnected. Stops reading past ``limit`` bytes."""
    receive = _within_limit(receive, limit)
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _body_kind(content_type: bytes) -> str:
    """Classify the request's content type: JSON (also when absent) or a form; anything else is an error."""
    if len(content_type) > MAX_CONTENT_TYPE_BYTES:
        # Real ones are under 100 bytes; parsing thousands of parameters would cost tens of milliseconds.
        raise ValueError(f"Content-Type is longer than {MAX_CONTENT_TYPE_BYTES} bytes")
    media_type = content_type.split(b";", 1)[0].strip().lower()
    if not media_type or media_type == b"application/json" or media_type.endswith(b"+json"):
        return JSON
    if media_type == b"application/x-www-form-urlencoded":
        return URLENCODED
    if media_type == b"multipart/form-data":
        return FORM_CONTENT_TYPE
    raise ValueError(
        f"Unsupported Content-Type '{media_type.decode(errors='replace')}': send JSON (application/json) or a form"
    )


def _within_limit(receive: Receive, limit: Optional[int]) -> Receive:
    """``receive`` that raises PayloadTooLargeError once the body passes ``limit`` bytes (chunked uploads)."""
    if limit is None:
        return receive
    size = 0

    async def receive_within_limit() -> dict:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLargeError(limit)
        return message

    return receive_within_limit


async def _read_form(scope: Scope, receive: Receive) -> bytes:
    from starlette.requests import Request

    try:
        form = await Request(scope, receive).form()
    except PayloadTooLargeError:
        raise
    except Exception as exc:  # malformed multipart bodies raise parser-specific errors
        raise ValueError(f"Could not parse the form in the request body: {exc}") from None
    payload = await form_to_dict(form)
    if not payload:
        raise ValueError("Could not find any field in the multipart form in the request body")
    return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)


def _urlencoded_form(body: bytes) -> bytes:
    from urllib.parse import parse_qsl

    try:
        fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        raise ValueError("Could not parse the form in the request body: it is not UTF-8 text") from None
    return pickle.dumps(fields, protocol=pickle.HIGHEST_PROTOCOL) if fields else b""


async def send_too_large(send: Send, limit: int) -> None:
    """Answer 413 for a body over ``limit`` bytes, in the plain ``{"detail": ...}`` shape."""
    await send_reply(send, codec.error_reply(413, _too_large_message(limit)))


def _too_large_message(limit: int) -> str:
    return f"Request body is larger than the server's limit of {limit} bytes"


async def _watch_disconnect(receive: Receive, dispatcher: Dispatcher, pending: Pending) -> None:
    """Abandon the request if the client goes away before its reply is complete."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
    if dispatcher.abandon(pending):
        if not pending.future.done():
            pending.future.set_result(_CLIENT_GONE)
        else:
            pending.stream.push(_CLIENT_GONE)
