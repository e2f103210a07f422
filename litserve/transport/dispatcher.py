"""The API process's end of the transport: sends requests to workers and resolves their replies.

One dispatcher per API process. It listens on a unix socket; every worker connects once it is ready, and
the requests queued during one turn of the event loop go to each worker as a single message. Requests for
a worker that is not connected yet wait in a backlog. The dispatcher also knows how many requests of each
route it holds, which bounds the queue (``max_queue_size``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from litserve.codec import PLAIN_ERRORS, ErrorFormat, error_reply
from litserve.metrics import WorkerLayout
from litserve.transport import messages

logger = logging.getLogger("litserve")

# (status, headers, body, done)
Chunk = Tuple[int, Any, bytes, bool]

# How long the requests of a worker whose connection closed wait for the supervisor to say how it died.
_EXIT_NOTICE_WAIT_S = 2.0


class ResponseStream:
    """The chunks of one streamed reply, in arrival order."""

    __slots__ = ("_chunks", "_waiter", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._chunks: deque = deque()
        self._waiter: Optional[asyncio.Future] = None
        self._loop = loop

    def push(self, chunk: Chunk) -> None:
        self._chunks.append(chunk)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_batch(self) -> List[Chunk]:
        """Every chunk that has arrived, in order; waits for the first one if none has."""
        while not self._chunks:
            self._waiter = self._loop.create_future()
            await self._waiter
            self._waiter = None
        return self.take_ready()

    def take_ready(self) -> List[Chunk]:
        """The chunks that have arrived so far (possibly none), without waiting."""
        chunks = list(self._chunks)
        self._chunks.clear()
        return chunks


class Pending:
    """A request sent to a worker and not yet fully answered."""

    __slots__ = ("uid", "worker_id", "future", "stream", "sent_on", "errors")

    def __init__(
        self,
        uid: int,
        worker_id: int,
        future: asyncio.Future,
        stream: Optional[ResponseStream],
        errors: ErrorFormat = PLAIN_ERRORS,
    ) -> None:
        self.uid = uid
        self.worker_id = worker_id
        self.future = future  # resolves with the first reply item (the whole reply when not streaming)
        self.stream = stream  # the remaining chunks of a streamed reply
        self.sent_on: Optional[_Peer] = None  # the worker connection it was written to; None while queued here
        self.errors = errors  # how errors the dispatcher answers itself are shaped on the request's path


class _Peer(asyncio.Protocol):
    """A connection accepted by the API process: a worker's, or the supervisor's notice."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._reader = messages.FrameReader()
        self.transport: Optional[asyncio.Transport] = None
        self.worker_id: Optional[int] = None  # set by the worker's WORKER_READY
        self.incarnation = -1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._dispatcher._peers.add(self)

    def data_received(self, data: bytes) -> None:
        handle = self._dispatcher._handle
        for message in self._reader.feed(data):
            handle(self, message)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._dispatcher._disconnected(self)

    def send(self, message: tuple) -> None:
        write = self.transport.write
        for data in messages.frame(message):
            write(data)


class Dispatcher:
    """Routes requests of each API route to the least busy of its workers.

    A worker runs up to ``run_at_once`` requests of its route together (``max_batch_size``; many more for async
    APIs); what it holds beyond that is queued, and ``queue_limits`` caps the queued requests of each route
    (None: no cap).
    """

    def __init__(
        self,
        api_server: int,
        route_workers: List[List[int]],
        queue_limits: Optional[Sequence[Optional[int]]] = None,
        run_at_once: Optional[Sequence[int]] = None,
        count_held: Optional[Callable[[int, int, float], None]] = None,
    ) -> None:
        self.api_server = api_server
        self._route_workers = route_workers
        routes = len(route_workers)
        self._queue_limits = list(queue_limits) if queue_limits is not None else [None] * routes
        self._run_at_once = list(run_at_once) if run_at_once is not None else [1] * routes
        # Told (route, worker, +1 / -1) on every change, so the /metrics gauges are exact at any instant.
        self._count_held = count_held
        self._route_of = {w: route for route, workers in enumerate(route_workers) for w in workers}
        self._pending: Dict[int, Pending] = {}
        self._closed = False
        self._outstanding: Dict[int, int] = {w: 0 for workers in route_workers for w in workers}
        self._queued = [0] * routes
        self._connections: Dict[int, _Peer] = {}  # worker id -> its connection, once it is ready
        self._peers: Set[_Peer] = set()
        self._next_uid = 0
        self._outbox: Dict[int, list] = {}
        self._cancel_outbox: Dict[int, list] = {}
        self._backlog: Dict[int, list] = {}  # requests for workers not connected yet, in order
        self._flush_scheduled = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self, listener: socket.socket) -> None:
        """Accept the workers' connections on ``listener`` (bound by the main process)."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._loop.create_unix_server(lambda: _Peer(self), sock=listener)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        self._server = None
        for peer in list(self._peers):
            peer.transport.abort()

    # --- requests ---------------------------------------------------------------------------------

    def submit(
        self,
        route: int,
        content_type: str,
        body: bytes,
        deadline: Optional[float],
        stream: bool,
        path: str = "",
        errors: ErrorFormat = PLAIN_ERRORS,
    ) -> Pending:
        """Queue a request for the least busy worker of ``route``; ``path`` is the URL path it came on, and
        ``errors`` shapes the errors the dispatcher itself answers it with (OpenAI's shape on OpenAI paths)."""
        worker_id = self._pick_worker(route)
        uid = self._next_uid
        self._next_uid = uid + 1
        loop = self._loop
        pending = Pending(uid, worker_id, loop.create_future(), ResponseStream(loop) if stream else None, errors)
        self._pending[uid] = pending
        self._hold(worker_id)
        self._outbox.setdefault(worker_id, []).append((uid, deadline, content_type, body, path))
        self._schedule_flush()
        return pending

    def abandon(self, pending: Pending) -> bool:
        """Forget a request whose client is gone or timed out; tells the worker to skip or stop it.

        Returns False if the request had already been fully answered.
        """
        if self._pending.pop(pending.uid, None) is None:
            return False
        self._release(pending.worker_id)
        self._cancel(pending)
        return True

    def has_room(self, route: int) -> bool:
        """Whether a new request of ``route`` may be accepted: it would run at once, or the queue has room."""
        if self._closed:
            return False
        limit = self._queue_limits[route]
        if limit is None or self._queued[route] < limit:
            return True
        worker_id = self._pick_worker(route)
        return self._outstanding[worker_id] < self._run_at_once[route]

    def fail_all(self, detail: str) -> int:
        """Answer every request still held with 503 and ``detail`` (the shutdown grace period is over)."""
        self._closed = True  # requests still uploading their body get 503 too
        lost = list(self._pending.values())
        self._fail(lost, detail)
        for pending in lost:
            self._cancel(pending)
        return len(lost)

    def _cancel(self, pending: Pending) -> None:
        """Tell the worker to skip or stop a forgotten request; one not yet written is simply not sent.

        A request written to a connection that has since been replaced died with the worker it went to.
        """
        if pending.sent_on is not None and pending.sent_on is self._connections.get(pending.worker_id):
            self._cancel_outbox.setdefault(pending.worker_id, []).append(pending.uid)
            self._schedule_flush()

    def _hold(self, worker_id: int) -> None:
        held = self._outstanding[worker_id]
        self._outstanding[worker_id] = held + 1
        route = self._route_of[worker_id]
        if held >= self._run_at_once[route]:
            self._queued[route] += 1
        if self._count_held is not None:
            self._count_held(route, worker_id, 1.0)

    def _release(self, worker_id: int) -> None:
        held = self._outstanding[worker_id] - 1
        self._outstanding[worker_id] = held
        route = self._route_of[worker_id]
        if held >= self._run_at_once[route]:
            self._queued[route] -= 1
        if self._count_held is not None:
            self._count_held(route, worker_id, -1.0)

    def _pick_worker(self, route: int) -> int:
        workers = self._route_workers[route]
        if len(workers) == 1:
            return workers[0]
        outstanding = self._outstanding
        connected = self._connections  # a worker not connected is starting up, or dead and restarting
        best = None
        for worker_id in workers:
            if worker_id not in connected:
                continue
            if best is None or outstanding[worker_id] < outstanding[best]:
                best = worker_id
        return best if best is not None else min(workers, key=outstanding.__getitem__)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._cancel_outbox:
            cancels, self._cancel_outbox = self._cancel_outbox, {}
            for worker_id, uids in cancels.items():
                self._send_cancel(worker_id, uids)
        if self._outbox:
            outbox, self._outbox = self._outbox, {}
            for worker_id, entries in outbox.items():
                self._send_requests(worker_id, entries)

    def _send_requests(self, worker_id: int, entries: list) -> None:
        pending_by_uid = self._pending
        entries = [entry for entry in entries if entry[0] in pending_by_uid]  # not those abandoned meanwhile
        if not entries:
            return
        peer = self._connections.get(worker_id)
        if peer is None:
            self._backlog.setdefault(worker_id, []).extend(entries)
            return
        peer.send((messages.REQUESTS, self.api_server, time.monotonic(), entries))
        for entry in entries:
            pending_by_uid[entry[0]].sent_on = peer

    def _send_cancel(self, worker_id: int, uids: list) -> None:
        peer = self._connections.get(worker_id)
        if peer is not None:
            peer.send((messages.CANCEL, self.api_server, uids))
        # Otherwise the connection these requests were written to is gone, and with it the work they were.

    # --- replies and notices ----------------------------------------------------------------------

    def _handle(self, peer: _Peer, message: tuple) -> None:
        kind = message[0]
        if kind == messages.RESPONSES:
            self._resolve(message[1])
        elif kind == messages.WORKER_READY:
            self._worker_ready(peer, message[1], message[2])
        elif kind == messages.WORKER_EXITED:
            self._worker_exited(message[1], message[2], message[3])

    def _resolve(self, entries: list) -> None:
        pending_by_uid = self._pending
        for uid, status, headers, body, done in entries:
            pending = pending_by_uid.get(uid)
            if pending is None:
                continue  # timed out or client gone
            if done:
                del pending_by_uid[uid]
                self._release(pending.worker_id)
            if not pending.future.done():
                pending.future.set_result((status, headers, body, done))
            elif pending.stream is not None:
                pending.stream.push((status, headers, body, done))

    def _worker_ready(self, peer: _Peer, worker_id: int, incarnation: int) -> None:
        if worker_id not in self._outstanding:
            peer.transport.abort()  # not one of this server's workers
            return
        current = self._connections.get(worker_id)
        if current is not None and current.incarnation > incarnation:
            peer.transport.abort()  # an older incarnation, already replaced
            return
        peer.worker_id = worker_id
        peer.incarnation = incarnation
        self._connections[worker_id] = peer
        backlog = self._backlog.pop(worker_id, None)
        if backlog:
            self._send_requests(worker_id, backlog)

    def _disconnected(self, peer: _Peer) -> None:
        self._peers.discard(peer)
        worker_id = peer.worker_id
        if worker_id is None:
            return  # the supervisor's notice
        if self._connections.get(worker_id) is peer:
            del self._connections[worker_id]
        if self._server is not None and any(p.sent_on is peer for p in self._pending.values()):
            # The supervisor normally says at once how the worker died; do not wait for it forever.
            self._loop.call_later(_EXIT_NOTICE_WAIT_S, self._fail_orphans, peer)

    def _fail_orphans(self, peer: _Peer) -> None:
        lost = [p for p in self._pending.values() if p.sent_on is peer]
        self._fail(lost, "The worker serving this request stopped unexpectedly (its connection closed).")

    def _worker_exited(self, worker_id: int, incarnation: int, description: str) -> None:
        if worker_id not in self._outstanding:
            return
        current = self._connections.get(worker_id)
        if current is not None and current.incarnation > incarnation:
            # Its successor is already connected: only what the dead one held is lost.
            lost = [
                p
                for p in self._pending.values()
                if p.worker_id == worker_id and p.sent_on is not None and p.sent_on.incarnation <= incarnation
            ]
        else:
            if current is not None:
                del self._connections[worker_id]
                current.transport.abort()
            # Requests not yet written are answered too: the restarted worker never runs a request whose
            # client already got 503.
            self._outbox.pop(worker_id, None)
            self._cancel_outbox.pop(worker_id, None)
            self._backlog.pop(worker_id, None)
            lost = [p for p in self._pending.values() if p.worker_id == worker_id]
        if lost:
            logger.warning("%d request(s) failed because worker %d %s", len(lost), worker_id, description)
        self._fail(lost, f"The worker serving this request stopped unexpectedly ({description}).")

    def _fail(self, lost: List[Pending], detail: str) -> None:
        for pending in lost:
            del self._pending[pending.uid]
            self._release(pending.worker_id)
            errors = pending.errors
            if not pending.future.done():
                status, headers, body = error_reply(503, detail, error_body=errors.error_body)
                pending.future.set_result((status, headers, body, True))
            elif pending.stream is not None:
                pending.stream.push((500, None, errors.stream_error(503, detail), True))

    # --- state ------------------------------------------------------------------------------------

    def all_workers_ready(self) -> bool:
        return len(self._connections) == len(self._outstanding)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def in_flight_by_route(self) -> List[int]:
        """Requests held for each route, queued or running."""
        return [sum(self._outstanding[w] for w in workers) for workers in self._route_workers]

    def worker_layout(self) -> WorkerLayout:
        """Which workers serve each route and how many requests each runs at once (for ``/metrics``)."""
        return WorkerLayout(self._route_workers, self._run_at_once)
