"""uvicorn's HTTP protocol with the limits it lacks: a request head must arrive in time and within a size, and
a request body must keep arriving.

uvicorn (h11 or httptools) waits forever for a request that is still arriving, so a few hundred clients that
trickle bytes (slowloris) hold connections and memory indefinitely; httptools also accepts heads of any size.
``guarded_protocol`` subclasses whichever protocol uvicorn would use and, per connection:

- answers 408 and closes when the request head (request line and headers) is not complete within
  ``header_timeout`` seconds of its first byte (or of the connection opening), however slowly it trickles;
- answers 431 and closes when the head passes ``max_header_bytes`` or ``max_header_lines``, before the parser
  or the app sees it;
- answers 408 and closes when a request body makes no progress for ``body_timeout`` seconds. The request's
  handler then sees a disconnect, so a stalled body never reaches a worker.

It also writes uvicorn's access-log lines the cheap way where it can (``litserve.access_log``).

Time the server spends not reading (flow control while the app is busy) never counts against the client.
Idle keep-alive connections stay uvicorn's business (``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Type, Union

import h11

from litserve.access_log import direct_access_log

DEFAULT_HEADER_TIMEOUT_S = 5.0
DEFAULT_BODY_TIMEOUT_S = 15.0
DEFAULT_MAX_HEADER_BYTES = 32 * 1024
DEFAULT_MAX_HEADER_LINES = 200

_HEAD_END = b"\r\n\r\n"
# How long a refused connection is still read (and what arrives dropped) before it closes.
_LINGER_S = 2.0


def _plain_response(status: bytes, message: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
    )


HEADER_TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", b"The request head did not arrive in time")
BODY_TIMEOUT_RESPONSE = _plain_response(b"408 Request Timeout", b"The request body stopped arriving")
HEADER_TOO_LARGE_RESPONSE = _plain_response(
    b"431 Request Header Fields Too Large", b"The request line and headers are too large or too many"
)


class _Deadlines:
    """Mixed in before uvicorn's H11Protocol or HttpToolsProtocol; relies on their ``cycle`` and ``flow``."""

    header_timeout: Optional[float] = DEFAULT_HEADER_TIMEOUT_S
    body_timeout: Optional[float] = DEFAULT_BODY_TIMEOUT_S
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_header_lines: int = DEFAULT_MAX_HEADER_LINES

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        if self.access_log:  # uvicorn's access logger has handlers: write its lines the cheap way if it can be
            self.access_logger = direct_access_log(self.access_logger) or self.access_logger
        self._timer: Optional[asyncio.TimerHandle] = None
        self._head_started_at: Optional[float] = self.loop.time()  # waiting for the first request
        self._last_data_at = self._head_started_at
        self._head_bytes = 0
        self._head_lines = 0
        self._head_tail = b""
        self._between_messages = True  # httptools: no request line or headers of a new message parsed yet
        self._done = False  # refused, or upgraded to a websocket: no more HTTP on this connection
        self._watch()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._cancel_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._done:
            return  # lingering after a refusal: read and drop what the client is still sending
        now = self.loop.time()
        self._last_data_at = now
        if self._reading_head():
            if self._head_started_at is None:
                self._head_started_at = now
                self._head_bytes = self._head_lines = 0
                self._head_tail = b""
            if not self._head_within_limits(data):
                self._refuse(HEADER_TOO_LARGE_RESPONSE)
                return
        super().data_received(data)
        if not self._reading_head():
            self._head_started_at = None  # the next head's clock starts with its first byte
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._reading_head():
            self._head_started_at = None  # keep-alive: uvicorn times the idle wait; the head starts with its data
        self._watch()

    def on_headers_complete(self) -> None:  # httptools only
        self._between_messages = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:  # httptools only
        super().on_message_complete()
        self._between_messages = True

    def handle_websocket_upgrade(self, *args: Any) -> None:
        self._cancel_timer()
        self._done = True  # the connection now belongs to the websocket protocol: no more HTTP deadlines
        super().handle_websocket_upgrade(*args)

    # --- internals ---------------------------------------------------------------------------------

    def _client_state(self) -> str:
        """What the client is sending: ``"head"`` (or nothing yet), ``"body"``, or ``"done"`` (its request is
        complete). A body the app never read (after an early 413 or 503) still counts as body."""
        conn = getattr(self, "conn", None)
        if conn is not None:  # h11 keeps the client's state itself
            state = conn.their_state
            return "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else "done"
        if self._between_messages:
            return "head"
        return "body"

    def _reading_head(self) -> bool:
        """Bytes that arrive now belong to a new request's head (no request is still being answered)."""
        cycle = self.cycle
        return self._client_state() == "head" and (cycle is None or cycle.response_complete)

    def _head_within_limits(self, data: bytes) -> bool:
        joined = self._head_tail + data
        end = joined.find(_HEAD_END)
        head = data if end < 0 else data[: max(0, end + len(_HEAD_END) - len(self._head_tail))]
        self._head_tail = joined[-(len(_HEAD_END) - 1) :]
        self._head_bytes += len(head)
        self._head_lines += head.count(b"\n")
        return self._head_bytes <= self.max_header_bytes and self._head_lines <= self.max_header_lines

    def _deadline(self) -> Optional[float]:
        """When the client runs out of time at the current stage, or None while it owes nothing."""
        if self._reading_head():
            if self._head_started_at is None or self.header_timeout is None:
                return None
            return self._head_started_at + self.header_timeout
        if self._client_state() != "body" or self.body_timeout is None:
            return None
        if self.flow.read_paused:
            self._last_data_at = self.loop.time()  # we are not reading: the client cannot be late
        return self._last_data_at + self.body_timeout

    def _watch(self) -> None:
        if self._timer is not None or self._done or self.transport.is_closing():
            return
        deadline = self._deadline()
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._done or self.transport.is_closing():
            return
        deadline = self._deadline()
        if deadline is None:
            return
        if self.loop.time() < deadline:
            self._timer = self.loop.call_at(deadline, self._check)
            return
        self._refuse(HEADER_TIMEOUT_RESPONSE if self._reading_head() else BODY_TIMEOUT_RESPONSE)

    def _refuse(self, response: bytes) -> None:
        """Answer ``response`` unless a response already started, and close; a handler reading the body sees
        a disconnect."""
        self._cancel_timer()
        cycle = self.cycle
        started = False
        if cycle is not None and not cycle.response_complete:
            started = cycle.response_started
            cycle.disconnected = True
            cycle.message_event.set()
        if not started:
            self.transport.write(response)
        # Closing with unread bytes would make the kernel reset the connection, and the client could lose the
        # answer: end our side, drop what still arrives for a moment, then close.
        self._done = True
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            self._timer = self.loop.call_later(_LINGER_S, transport.close)
        else:
            transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def resolve_protocol(http: Union[str, Type[asyncio.Protocol]]) -> Type[asyncio.Protocol]:
    """The protocol class uvicorn would use for its ``http`` option (``"auto"``, ``"h11"``, ``"httptools"``)."""
    if not isinstance(http, str):
        return http
    from uvicorn.config import HTTP_PROTOCOLS
    from uvicorn.importer import import_from_string

    return import_from_string(HTTP_PROTOCOLS[http])


def guarded_protocol(
    http: Union[str, Type[asyncio.Protocol]] = "auto",
    header_timeout: Optional[float] = DEFAULT_HEADER_TIMEOUT_S,
    body_timeout: Optional[float] = DEFAULT_BODY_TIMEOUT_S,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_header_lines: int = DEFAULT_MAX_HEADER_LINES,
) -> Type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol with head and body deadlines and head size limits, for ``uvicorn.Config(http=)``.

    A timeout of None turns that deadline off.
    """
    base = resolve_protocol(http)
    if not hasattr(base, "on_response_complete") or not hasattr(base, "data_received"):
        raise ValueError(f"cannot add request deadlines to the HTTP protocol {base!r}: use 'h11' or 'httptools'")
    options = {
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
        "max_header_bytes": max_header_bytes,
        "max_header_lines": max_header_lines,
    }
    return type(f"Guarded{base.__name__}", (_Deadlines, base), options)


def resolve_client_timeout(value: Any, name: str) -> Optional[float]:
    """Seconds a client gets (``request_header_timeout``, ``request_body_timeout``); None or False turns it off."""
    if value is None or value is False:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, or None to disable, got {value!r}")
    return float(value)
