"""The API process's end of the transport: sends requests to workers and resolves their replies.

One dispatcher per API process. Requests queued during one turn of the event loop go to each worker as
a single message; one reader on the process's inbox resolves every waiting request. The dispatcher also
knows how many requests of each route it holds, which bounds the queue (``max_queue_size``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import zmq

from litserve.codec import PLAIN_ERRORS, ErrorFormat, error_reply
from litserve.transport import messages

logger = logging.getLogger("litserve")

# (status, headers, body, done)
Chunk = Tuple[int, Any, bytes, bool]

# Inbox messages handled per turn of the event loop. A worker that streams fast could otherwise keep the
# reader busy for milliseconds while the items already read wait to be written to their clients.
_READS_PER_TURN = 32


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

    __slots__ = ("uid", "worker_id", "future", "stream")

    def __init__(self, uid: int, worker_id: int, future: asyncio.Future, stream: Optional[ResponseStream]) -> None:
        self.uid = uid
        self.worker_id = worker_id
        self.future = future  # resolves with the first reply item (the whole reply when not streaming)
        self.stream = stream  # the remaining chunks of a streamed reply


class Dispatcher:
    """Routes requests of each API route to the least busy of its workers.

    A worker runs up to its route's ``max_batch_size`` requests at once; what it holds beyond that is
    queued, and ``queue_limits`` caps the queued requests of each route (None: no cap).
    """

    def __init__(
        self,
        api_server: int,
        endpoints: messages.Endpoints,
        route_workers: List[List[int]],
        queue_limits: Optional[Sequence[Optional[int]]] = None,
        batch_sizes: Optional[Sequence[int]] = None,
        error_formats: Optional[Sequence[ErrorFormat]] = None,
    ) -> None:
        self.api_server = api_server
        self._endpoints = endpoints
        self._route_workers = route_workers
        routes = len(route_workers)
        self._queue_limits = list(queue_limits) if queue_limits is not None else [None] * routes
        self._batch_sizes = list(batch_sizes) if batch_sizes is not None else [1] * routes
        # How each route shapes the errors the dispatcher answers itself (an OpenAI route: OpenAI's shape).
        self._error_formats = list(error_formats) if error_formats is not None else [PLAIN_ERRORS] * routes
        self._route_of = {w: route for route, workers in enumerate(route_workers) for w in workers}
        self._pending: Dict[int, Pending] = {}
        self._closed = False
        self._outstanding: Dict[int, int] = {w: 0 for workers in route_workers for w in workers}
        self._queued = [0] * routes
        self._ready: Set[int] = set()
        self._dead: Set[int] = set()
        self._next_uid = 0
        self._outbox: Dict[int, list] = {}
        self._cancel_outbox: Dict[int, list] = {}
        self._flush_scheduled = False
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._context: Optional[zmq.Context] = None

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the sockets and start reading replies; call from inside the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._context = zmq.Context()
        self._inbox = self._context.socket(zmq.PULL)
        self._inbox.setsockopt(zmq.LINGER, 0)
        self._inbox.bind(self._endpoints.api_inbox(self.api_server))
        self._workers: Dict[int, zmq.Socket] = {w: self._connect(w) for w in self._outstanding}
        self._loop.add_reader(self._inbox.getsockopt(zmq.FD), self._read_inbox)
        self._read_inbox()

    def _connect(self, worker_id: int) -> zmq.Socket:
        sock = self._context.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 20)
        sock.connect(self._endpoints.worker_requests(worker_id))
        return sock

    def stop(self) -> None:
        if self._context is None:
            return
        self._loop.remove_reader(self._inbox.getsockopt(zmq.FD))
        self._context.destroy(linger=0)
        self._context = None

    # --- requests ---------------------------------------------------------------------------------

    def submit(self, route: int, content_type: str, body: bytes, deadline: Optional[float], stream: bool) -> Pending:
        """Queue a request for the least busy worker of ``route``."""
        worker_id = self._pick_worker(route)
        uid = self._next_uid
        self._next_uid = uid + 1
        loop = self._loop
        pending = Pending(uid, worker_id, loop.create_future(), ResponseStream(loop) if stream else None)
        self._pending[uid] = pending
        self._hold(worker_id)
        self._outbox.setdefault(worker_id, []).append((uid, deadline, content_type, body))
        self._schedule_flush()
        return pending

    def abandon(self, pending: Pending) -> bool:
        """Forget a request whose client is gone or timed out; tells the worker to skip or stop it.

        Returns False if the request had already been fully answered.
        """
        if self._pending.pop(pending.uid, None) is None:
            return False
        self._release(pending.worker_id)
        self._cancel_outbox.setdefault(pending.worker_id, []).append(pending.uid)
        self._schedule_flush()
        return True

    def has_room(self, route: int) -> bool:
        """Whether a new request of ``route`` may be accepted: it would run at once, or the queue has room."""
        if self._closed:
            return False
        limit = self._queue_limits[route]
        if limit is None or self._queued[route] < limit:
            return True
        worker_id = self._pick_worker(route)
        return self._outstanding[worker_id] < self._batch_sizes[route]

    def fail_all(self, detail: str) -> int:
        """Answer every request still held with 503 and ``detail`` (the shutdown grace period is over)."""
        self._closed = True  # requests still uploading their body get 503 too
        lost = list(self._pending.values())
        self._fail(lost, detail)
        for pending in lost:
            self._cancel_outbox.setdefault(pending.worker_id, []).append(pending.uid)
        if lost:
            self._schedule_flush()
        return len(lost)

    def _hold(self, worker_id: int) -> None:
        held = self._outstanding[worker_id]
        self._outstanding[worker_id] = held + 1
        route = self._route_of[worker_id]
        if held >= self._batch_sizes[route]:
            self._queued[route] += 1

    def _release(self, worker_id: int) -> None:
        held = self._outstanding[worker_id] - 1
        self._outstanding[worker_id] = held
        route = self._route_of[worker_id]
        if held >= self._batch_sizes[route]:
            self._queued[route] -= 1

    def _pick_worker(self, route: int) -> int:
        workers = self._route_workers[route]
        if len(workers) == 1:
            return workers[0]
        outstanding = self._outstanding
        dead = self._dead
        best = None
        for worker_id in workers:
            if worker_id in dead:
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
        encode = messages.encode
        if self._cancel_outbox:
            cancels, self._cancel_outbox = self._cancel_outbox, {}
            for worker_id, uids in cancels.items():
                self._workers[worker_id].send(encode((messages.CANCEL, self.api_server, uids)))
        if self._outbox:
            outbox, self._outbox = self._outbox, {}
            sent_at = time.monotonic()
            for worker_id, entries in outbox.items():
                self._workers[worker_id].send(encode((messages.REQUESTS, self.api_server, sent_at, entries)))

    # --- replies ----------------------------------------------------------------------------------

    def _read_inbox(self) -> None:
        recv = self._inbox.recv
        decode = messages.decode
        for _ in range(_READS_PER_TURN):
            try:
                data = recv(zmq.NOBLOCK)
            except zmq.Again:
                if self._inbox.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                    continue
                return
            except zmq.ZMQError:
                return  # closed during shutdown
            message = decode(data)
            kind = message[0]
            if kind == messages.RESPONSES:
                self._resolve(message[1])
            elif kind == messages.WORKER_READY:
                self._ready.add(message[1])
                self._dead.discard(message[1])
            elif kind == messages.WORKER_EXITED:
                self._worker_exited(message[1], message[2])
        # More is waiting: read it on the next turn, so the replies read so far reach their clients first.
        # (The inbox's descriptor only signals new arrivals, so it will not call us again by itself.)
        self._loop.call_soon(self._read_inbox)

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

    def _worker_exited(self, worker_id: int, description: str) -> None:
        self._ready.discard(worker_id)
        self._dead.add(worker_id)
        # Requests still on their way to the dead worker are answered below: a fresh socket drops them, so
        # the restarted worker never runs a request whose client already got 503.
        self._outbox.pop(worker_id, None)
        self._cancel_outbox.pop(worker_id, None)
        self._workers[worker_id].close(linger=0)
        self._workers[worker_id] = self._connect(worker_id)
        lost = [p for p in self._pending.values() if p.worker_id == worker_id]
        if lost:
            logger.warning("%d request(s) failed because worker %d %s", len(lost), worker_id, description)
        self._fail(lost, f"The worker serving this request stopped unexpectedly ({description}).")

    def _fail(self, lost: List[Pending], detail: str) -> None:
        for pending in lost:
            del self._pending[pending.uid]
            self._release(pending.worker_id)
            errors = self._error_formats[self._route_of[pending.worker_id]]
            if not pending.future.done():
                status, headers, body = error_reply(503, detail, error_body=errors.error_body)
                pending.future.set_result((status, headers, body, True))
            elif pending.stream is not None:
                pending.stream.push((500, None, errors.stream_error(503, detail), True))

    # --- state ------------------------------------------------------------------------------------

    def all_workers_ready(self) -> bool:
        return len(self._ready) == len(self._outstanding)

    def route_ready(self, route: int) -> bool:
        return any(w in self._ready for w in self._route_workers[route])

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def in_flight_by_route(self) -> List[int]:
        """Requests held for each route, queued or running."""
        return [sum(self._outstanding[w] for w in workers) for workers in self._route_workers]

    def queued_by_route(self) -> List[int]:
        """Requests of each route waiting for a worker."""
        return list(self._queued)
