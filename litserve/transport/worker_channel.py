"""The worker's end of the transport: receives requests and cancellations, sends replies."""

from __future__ import annotations

import select
import socket
import time
from collections import deque
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from litserve.metrics import WorkerMetrics
from litserve.transport import messages


class ParentGoneError(Exception):
    """The process that started this worker has exited; the worker must exit too."""


class WorkItem:
    """One request waiting in a worker."""

    __slots__ = ("api_server", "uid", "deadline", "content_type", "body", "submitted", "path")

    def __init__(
        self,
        api_server: int,
        uid: int,
        deadline: Optional[float],
        content_type: str,
        body: bytes,
        submitted: float = 0.0,
        path: str = "",
    ) -> None:
        self.api_server = api_server
        self.uid = uid
        self.deadline = deadline
        self.content_type = content_type
        self.body = body
        self.submitted = submitted  # when the API process sent it (time.monotonic())
        self.path = path  # the URL path it came on

    @property
    def key(self) -> Tuple[int, int]:
        return self.api_server, self.uid


# A reply item: (work item, status, headers, body, done).
Outgoing = Tuple[WorkItem, int, Any, bytes, bool]

_CANCEL_MEMORY_S = 300.0
_CANCEL_CHECK_INTERVAL_S = 0.001
_RECV_SIZE = 256 * 1024


class _ApiConnection:
    """A worker's connection to one API process."""

    __slots__ = ("sock", "reader")

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(None)  # blocking, whatever socket.setdefaulttimeout the model's code set
        self.sock.connect(path)
        self.reader = messages.FrameReader()


class WorkerChannel:
    """Owns a worker's connections; requests are queued locally so loops can take what they need.

    The worker connects to the API processes once it is ready (``open``). A connection whose API process
    went away is dropped; replies meant for it are discarded.
    """

    def __init__(
        self,
        api_inboxes: List[str],
        parent_sentinel: Optional[int],
        metrics: Optional[WorkerMetrics] = None,
    ) -> None:
        self.metrics = metrics
        self._api_inboxes = api_inboxes
        self._connections: List[Optional[_ApiConnection]] = []
        self._poller = select.poll()
        self._parent_sentinel = parent_sentinel
        if parent_sentinel is not None:
            self._poller.register(parent_sentinel, select.POLLIN)
        self.pending: deque = deque()
        self._cancelled: Dict[Tuple[int, int], float] = {}
        self._drained_at = 0.0  # when is_cancelled last read the connections
        # Called with a request's key when its cancellation arrives (the async loop stops its task).
        self.on_cancel: Optional[Callable[[Tuple[int, int]], None]] = None
        # Called whenever requests are queued, whoever read them: an event loop waiting for arrivals must
        # hear of requests that a hook's cancellation check happened to read off the socket.
        self.on_requests: Optional[Callable[[], None]] = None

    def open(self, worker_id: int, incarnation: int) -> None:
        """Connect to every API process and tell each that this worker is ready."""
        hello = b"".join(messages.frame((messages.WORKER_READY, worker_id, incarnation)))
        for path in self._api_inboxes:
            try:
                connection = _ApiConnection(path)
                connection.sock.sendall(hello)
            except OSError:
                connection = None  # that API process is gone
            self._connections.append(connection)
            if connection is not None:
                self._poller.register(connection.sock.fileno(), select.POLLIN)

    # --- receiving --------------------------------------------------------------------------------

    def wait(self, timeout: Optional[float]) -> None:
        """Block until something arrives (or ``timeout`` seconds pass), then queue what arrived."""
        timeout_ms = None if timeout is None else max(0, int(timeout * 1000))
        for fd, _ in self._poller.poll(timeout_ms):
            if fd == self._parent_sentinel:
                raise ParentGoneError()
        self.drain()

    def drain(self) -> None:
        """Queue every message already waiting, without blocking."""
        for api_server, connection in enumerate(self._connections):
            if connection is None:
                continue
            while True:
                try:
                    data = connection.sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    data = b""  # reset: a local socket only fails when its API process is gone
                if not data:
                    self._drop(api_server)
                    break
                for message in connection.reader.feed(data):
                    self._handle(message)
                if len(data) < _RECV_SIZE:
                    break

    def _drop(self, api_server: int) -> None:
        connection = self._connections[api_server]
        if connection is None:
            return
        self._connections[api_server] = None
        self._poller.unregister(connection.sock.fileno())
        connection.sock.close()

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == messages.REQUESTS:
            _, api_server, sent_at, entries = message
            append = self.pending.append
            for uid, deadline, content_type, body, path in entries:
                append(WorkItem(api_server, uid, deadline, content_type, body, sent_at, path))
            if self.on_requests is not None:
                self.on_requests()
        elif kind == messages.CANCEL:
            _, api_server, uids = message
            now = time.monotonic()
            for uid in uids:
                self._cancelled[(api_server, uid)] = now
            if self.on_cancel is not None:
                for uid in uids:
                    self.on_cancel((api_server, uid))
            if len(self._cancelled) > 10_000:
                self._forget_old_cancellations(now)

    def take(self, limit: int) -> List[WorkItem]:
        """Up to ``limit`` queued requests that are still wanted (not cancelled, not past their deadline)."""
        taken = []
        pending = self.pending
        now = time.monotonic()
        while pending and len(taken) < limit:
            item = pending.popleft()
            if self._cancelled and self._cancelled.pop(item.key, None) is not None:
                continue
            if item.deadline is not None and now > item.deadline:
                continue  # the API process already answered 504
            taken.append(item)
        return taken

    def mark_started(self, items: List[WorkItem]) -> None:
        """The loop is about to run ``items`` as one batch (recorded for ``/metrics``)."""
        if self.metrics is not None:
            self.metrics.started(items)

    def is_cancelled(self, item: WorkItem) -> bool:
        """Whether the client of ``item`` went away; looks for new messages at most every millisecond.

        Streaming loops ask before every item: reading the socket each time would cost more than a
        small item itself, and a cancellation seen a millisecond later changes nothing.
        """
        now = time.monotonic()
        if now - self._drained_at >= _CANCEL_CHECK_INTERVAL_S:
            self._drained_at = now
            self.drain()
        return item.key in self._cancelled

    def was_cancelled(self, key: Tuple[int, int]) -> bool:
        """Whether a cancellation of request ``key`` has been read (without reading new messages)."""
        return key in self._cancelled

    def forget_cancellation(self, key: Tuple[int, int]) -> None:
        """A cancelled request was stopped without a reply: nothing more to remember about it."""
        self._cancelled.pop(key, None)

    def readable_fds(self) -> List[int]:
        """The file descriptors to watch for new messages: the open connections, then the parent's sentinel."""
        fds = [connection.sock.fileno() for connection in self._connections if connection is not None]
        if self._parent_sentinel is not None:
            fds.append(self._parent_sentinel)
        return fds

    @property
    def parent_sentinel(self) -> Optional[int]:
        return self._parent_sentinel

    def _forget_old_cancellations(self, now: float) -> None:
        self._cancelled = {key: t for key, t in self._cancelled.items() if now - t < _CANCEL_MEMORY_S}

    # --- sending ----------------------------------------------------------------------------------

    def send(self, replies: Iterable[Outgoing]) -> None:
        """Send replies, one message per API process."""
        grouped: Dict[int, list] = {}
        for item, status, headers, body, done in replies:
            grouped.setdefault(item.api_server, []).append((item.uid, status, headers, body, done))
            if done and self._cancelled:
                self._cancelled.pop(item.key, None)
        for api_server, entries in grouped.items():
            self._write(api_server, (messages.RESPONSES, entries))

    def send_one(self, item: WorkItem, status: int, headers: Any, body: bytes, done: bool) -> None:
        self._write(item.api_server, (messages.RESPONSES, [(item.uid, status, headers, body, done)]))

    def _write(self, api_server: int, message: tuple) -> None:
        # Blocking: a worker whose replies are not being read waits for its API process (backpressure)
        # rather than buffering without bound; an API process that exits closes the connection.
        connection = self._connections[api_server]
        if connection is None:
            return  # that API process is gone; nobody waits for this reply
        try:
            for data in messages.frame(message):
                connection.sock.sendall(data)
        except OSError:
            self._drop(api_server)

    def close(self) -> None:
        for api_server in range(len(self._connections)):
            self._drop(api_server)
        if self.metrics is not None:
            self.metrics.close()
