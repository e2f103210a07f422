"""The continuous-batching worker loop: requests join and leave a running set between steps."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from litserve import codec
from litserve.loops import Output
from litserve.status import LitAPIStatus
from litserve.transport.worker_channel import Outgoing, WorkerChannel, WorkItem
from litserve.workers.hooks import HookRunner
from litserve.workers.protocol import JsonProtocol
from litserve.workers.skeleton import WorkerLoop

logger = logging.getLogger("litserve")

# How long to wait for news while the LitAPI says it has active requests but its step produced nothing.
_IDLE_STEP_WAIT_S = 0.01


class Encoded:
    """A response item already in its wire form: its bytes are sent as they are.

    ``headers`` are used when the item is the first of its response (the status line's headers).
    """

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, headers: codec.Headers = None) -> None:
        self.body = body
        self.headers = headers


class ActiveRequest:
    """A request in the running set."""

    __slots__ = ("item", "started", "context")

    def __init__(self, item: WorkItem) -> None:
        self.item = item
        self.started = False  # its first bytes (and headers) are sent
        self.context: dict = {}


class ContinuousLoop(WorkerLoop):
    """Admits requests while the LitAPI has capacity, steps the running set, streams each output at once."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, protocol: Optional[JsonProtocol] = None) -> None:
        super().__init__(runner, channel, protocol)
        self.api = runner.lit_api
        self.active: Dict[Any, ActiveRequest] = {}
        self._cancel_hook = getattr(self.api, "cancel", None)

    # --- the LitAPI's hooks, with defaults for the optional ones ---------------------------------------

    def has_capacity(self) -> bool:
        hook = getattr(self.api, "has_capacity", None)
        return bool(hook()) if hook is not None else len(self.active) < self.max_batch_size

    def has_active_requests(self) -> bool:
        hook = getattr(self.api, "has_active_requests", None)
        return bool(hook()) if hook is not None else bool(self.active)

    def request_of(self, item: WorkItem) -> Any:
        """What ``add_request`` receives for ``item``: the parsed (and validated) body."""
        return self.protocol.parse(item)

    def encode(self, state: ActiveRequest, output: Any) -> tuple:
        """(headers or None, body) for one output of ``state``'s request."""
        if isinstance(output, Encoded):
            return output.headers, output.body
        encoded = self.runner.encode(output, state.context)
        body = codec.encode_stream_item(encoded)
        return codec.stream_headers(encoded), body

    def error_body_for(self, item: WorkItem) -> codec.ErrorBody:
        return self.error_body

    def stream_error_for(self, item: WorkItem, reply: codec.Reply) -> bytes:
        """The last bytes of a stream that fails after it started (plain streams just end)."""
        return b""

    def observe(self) -> None:
        """Called once per iteration, after admissions and cancellations (e.g. to refresh gauges)."""

    # --- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        channel = self.channel
        prev_outputs: Optional[List[Output]] = None
        while True:
            self.admit()
            self.drop_cancelled()
            self.observe()
            if not self.has_active_requests():
                prev_outputs = None
                self.fail_orphans()
                channel.wait(None if not channel.pending else _IDLE_STEP_WAIT_S)
                continue
            try:
                outputs = self.runner.resolve(self.api.step(prev_outputs))
                if outputs is None:
                    outputs = []
                if not isinstance(outputs, list) or not all(isinstance(out, Output) for out in outputs):
                    raise TypeError(f"step must return a list of Output, got {type(outputs).__name__}")
            except Exception as exc:
                self.fail_all(exc)
                prev_outputs = None
                continue
            if not outputs:
                channel.wait(_IDLE_STEP_WAIT_S)  # woken at once by a new request or cancellation
                continue
            self.deliver(outputs)
            prev_outputs = outputs

    def admit(self) -> None:
        """Hand waiting requests to ``add_request`` while the LitAPI has room (at a step boundary)."""
        channel = self.channel
        channel.drain()
        while channel.pending and self.has_capacity():
            items = channel.take(1)
            if not items:
                break
            item = items[0]
            channel.mark_started(items)
            uid = f"{item.api_server}-{item.uid}"
            try:
                request = self.request_of(item)
                self.runner.resolve(self.api.add_request(uid, request))
            except Exception as exc:
                channel.send_one(item, *codec.exception_reply(exc, "add_request", self.error_body_for(item)), True)
                continue
            self.active[uid] = ActiveRequest(item)

    def drop_cancelled(self) -> None:
        """Forget requests whose client left or timed out, and tell the LitAPI to free them."""
        if not self.active:
            return
        is_cancelled = self.channel.is_cancelled
        gone = [uid for uid, state in self.active.items() if is_cancelled(state.item)]
        if not gone:
            return
        replies = []
        for uid in gone:
            state = self.active.pop(uid)
            self.call_cancel(uid)
            replies.append((state.item, 200, None, b"", True))  # nobody reads it; it closes the books
        self.channel.send(replies)

    def call_cancel(self, uid: Any) -> None:
        if self._cancel_hook is None:
            return
        try:
            self.runner.resolve(self._cancel_hook(uid))
        except Exception:
            logger.exception("cancel(%r) raised", uid)

    def deliver(self, outputs: List[Output]) -> None:
        """Send every output of one step; all of a step's items go out in one message per API process.

        A ``FINISH_STREAMING`` output ends its request's response and its payload is not sent (as in
        LitServe, whose users write ``Output(uid, "", FINISH_STREAMING)`` after the last item). An item and
        the end of its response in the same step travel as one reply.
        """
        replies: List[Outgoing] = []
        open_items: Dict[Any, int] = {}  # uid -> index in ``replies`` of its item from this step
        active = self.active
        for out in outputs:
            state = active.get(out.uid)
            if state is None:
                continue  # cancelled meanwhile, or a uid the loop never gave out
            status = out.status
            if status == LitAPIStatus.FINISH_STREAMING:
                del active[out.uid]
                index = open_items.pop(out.uid, None)
                if index is None:
                    replies.append((state.item, 200, None, b"", True))
                else:
                    replies[index] = (*replies[index][:4], True)
                continue
            if status == LitAPIStatus.ERROR:
                del active[out.uid]
                open_items.pop(out.uid, None)
                replies.append(self.error_reply(state, out.output, "step"))
                continue
            try:
                headers, body = self.encode(state, out.output)
            except Exception as exc:
                del active[out.uid]
                self.call_cancel(out.uid)
                replies.append(self.error_reply(state, exc, "encode_response"))
                continue
            if not body:
                continue  # nothing to say yet (e.g. half a character)
            if state.started:
                headers = None
            else:
                state.started = True
            open_items[out.uid] = len(replies)
            replies.append((state.item, 200, headers, body, False))
        if replies:
            self.channel.send(replies)

    def error_reply(self, state: ActiveRequest, error: Any, hook: str) -> Outgoing:
        item = state.item
        if isinstance(error, BaseException):
            reply = codec.exception_reply(error, hook, self.error_body_for(item))
        else:
            reply = codec.error_reply(500, str(error), error_body=self.error_body_for(item))
        if state.started:
            # The status line is out: end the stream (with an error event where the wire format has one).
            return item, 500, None, self.stream_error_for(item, reply), True
        return (item, *reply, True)

    def fail_all(self, exc: BaseException) -> None:
        """``step`` raised: every running request fails; the LitAPI is told to free each one."""
        replies = []
        for uid, state in list(self.active.items()):
            replies.append(self.error_reply(state, exc, "step"))
            self.call_cancel(uid)
        self.active.clear()
        if replies:
            self.channel.send(replies)

    def fail_orphans(self) -> None:
        """The LitAPI has no active requests, yet some never finished: answer them rather than hang."""
        if not self.active:
            return
        error = RuntimeError("has_active_requests() is False but the request never got a FINISH_STREAMING output")
        self.fail_all(error)
