"""The worker loops' shared skeleton: decode -> (batch) -> predict -> (unbatch) -> encode, written once.

Each request (or batch) is served by a coroutine of ``HookLoop``. The two drivers differ only in how the
hooks are called: ``SyncLoop`` (``sync_loops.py``) calls them directly and runs the coroutine to its end at
once, since nothing in it suspends; ``AsyncLoop`` (``async_loops.py``) awaits them, one task per request, on
the worker's event loop.
"""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, List, Optional

from litserve import codec
from litserve.transport.worker_channel import WorkerChannel, WorkItem
from litserve.workers.hooks import HookRunner
from litserve.workers.protocol import JsonProtocol

logger = logging.getLogger("litserve")


class HookFailedError(Exception):
    """Wraps an exception with the name of the hook that raised it."""

    def __init__(self, hook: str, error: BaseException) -> None:
        super().__init__(hook)
        self.hook = hook
        self.error = error

    def reply(self, error_body: codec.ErrorBody) -> codec.Reply:
        return codec.exception_reply(self.error, self.hook, error_body)


class StreamState:
    """Progress of one streamed response."""

    __slots__ = ("item", "started", "finished")

    def __init__(self, item: WorkItem) -> None:
        self.item = item
        self.started = False
        self.finished = False


class WorkerLoop:
    """Base of every worker loop: the API's hooks, the channel to the API processes and the wire format."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, protocol: Optional[JsonProtocol] = None) -> None:
        self.runner = runner
        self.channel = channel
        self.protocol = protocol or JsonProtocol()
        self.error_body = self.protocol.error_body
        self.max_batch_size = runner.options.max_batch_size
        self.batch_timeout = runner.options.batch_timeout
        self.stream = runner.options.stream

    def run(self) -> None:
        """Serve requests until the server process goes away."""
        raise NotImplementedError


class HookLoop(WorkerLoop):
    """The request skeleton as coroutines; a driver supplies the ``call_*`` primitives."""

    # --- primitives: a driver calls (sync) or awaits (async) the hooks ----------------------------------

    async def call_decode(self, payload: Any, context: dict) -> Any:
        raise NotImplementedError

    async def call_batch(self, inputs: list) -> Any:
        raise NotImplementedError

    async def call_predict(self, x: Any, context: Any) -> Any:
        raise NotImplementedError

    async def call_unbatch(self, output: Any) -> list:
        raise NotImplementedError

    async def call_encode(self, output: Any, context: Any) -> Any:
        raise NotImplementedError

    def iterate(self, result: Any) -> AsyncIterator[Any]:
        """The items of a generator (sync or async) that ``encode_response`` returned."""
        raise NotImplementedError

    async def close(self, result: Any) -> None:
        """Stop a user generator early so its ``finally`` blocks run."""
        raise NotImplementedError

    def is_cancelled(self, item: WorkItem) -> bool:
        """Whether ``item``'s client left or it timed out."""
        raise NotImplementedError

    # --- the skeleton ------------------------------------------------------------------------------------

    def work(self, items: List[WorkItem]) -> Any:
        """The coroutine that serves ``items`` (one request, or one batch)."""
        if self.max_batch_size > 1:
            return self.stream_batch(items) if self.stream else self.serve_batch(items)
        return self.stream_one(items[0]) if self.stream else self.serve_one(items[0])

    async def serve_one(self, item: WorkItem) -> None:
        context: dict = {}
        try:
            x = await self.decode(item, context)
            y = await _in_hook("predict", self.call_predict(x, context))
            reply = await self.encode_reply(y, context)
        except HookFailedError as failure:
            reply = failure.reply(self.error_body)
        self.channel.send_one(item, *reply, True)

    async def serve_batch(self, items: List[WorkItem]) -> None:
        live, inputs, contexts = await self.decode_each(items)
        if not live:
            return
        try:
            x = await _in_hook("batch", self.call_batch(inputs))
            y = await _in_hook("predict", self.call_predict(x, contexts))
            outputs = await self.unbatch(y, len(live))
        except HookFailedError as failure:
            reply = failure.reply(self.error_body)
            self.channel.send([(item, *reply, True) for item in live])
            return
        replies = []
        for item, output, context in zip(live, outputs, contexts):
            try:
                reply = await self.encode_reply(output, context)
            except HookFailedError as failure:
                reply = failure.reply(self.error_body)
            replies.append((item, *reply, True))
        self.channel.send(replies)

    async def stream_one(self, item: WorkItem) -> None:
        state = StreamState(item)
        context: dict = {}
        encoded = None
        try:
            x = await self.decode(item, context)
            try:
                encoded = await self.call_encode(await self.call_predict(x, context), context)
                async for output in self.iterate(encoded):
                    if self.is_cancelled(item):
                        state.finished = True
                        break
                    self.send_item(state, output)
            except HookFailedError:
                raise
            except Exception as exc:
                raise HookFailedError("predict", exc) from None
        except HookFailedError as failure:
            self.fail(state, failure)
        finally:
            await self.close(encoded)
        self.finish([state])

    async def stream_batch(self, items: List[WorkItem]) -> None:
        live, inputs, contexts = await self.decode_each(items)
        if not live:
            return
        states = [StreamState(item) for item in live]
        encoded = None
        try:
            try:
                x = await self.call_batch(inputs)
                encoded = await self.call_encode(await self.call_predict(x, contexts), contexts)
                async for batch_output in self.iterate(encoded):
                    outputs = await self.unbatch(batch_output, len(states))
                    if self.send_batch_items(states, outputs):
                        break
            except HookFailedError:
                raise
            except Exception as exc:
                raise HookFailedError("predict", exc) from None
        except HookFailedError as failure:
            for state in states:
                self.fail(state, failure)
        finally:
            await self.close(encoded)
        self.finish(states)

    # --- steps of the skeleton -----------------------------------------------------------------------

    async def decode(self, item: WorkItem, context: dict) -> Any:
        payload = None
        try:
            payload = self.protocol.parse(item)
            self.protocol.prepare_context(payload, context)
            return await self.call_decode(payload, context)
        except Exception as exc:
            raise HookFailedError("decode_request", self.protocol.client_error(exc, payload) or exc) from None

    async def decode_each(self, items: List[WorkItem]) -> tuple:
        """Decode every request; a failing one is answered at once and left out of the batch."""
        live, inputs, contexts = [], [], []
        for item in items:
            context: dict = {}
            try:
                inputs.append(await self.decode(item, context))
            except HookFailedError as failure:
                self.channel.send_one(item, *failure.reply(self.error_body), True)
                continue
            live.append(item)
            contexts.append(context)
        return live, inputs, contexts

    async def unbatch(self, output: Any, expected: int) -> list:
        outputs = await _in_hook("unbatch", self.call_unbatch(output))
        if len(outputs) != expected:
            error = RuntimeError(f"unbatch returned {len(outputs)} outputs for a batch of {expected} requests")
            raise HookFailedError("unbatch", error)
        return outputs

    async def encode_reply(self, output: Any, context: dict) -> codec.Reply:
        try:
            return self.protocol.reply(await self.call_encode(output, context), context)
        except Exception as exc:
            raise HookFailedError("encode_response", exc) from None

    # --- streamed replies ------------------------------------------------------------------------------

    def send_item(self, state: StreamState, output: Any) -> None:
        try:
            chunk = codec.encode_stream_item(output)
        except Exception as exc:
            raise HookFailedError("encode_response", exc) from None
        headers = None
        if not state.started:
            headers = codec.stream_headers(output)
            state.started = True
        self.channel.send_one(state.item, 200, headers, chunk, False)

    def send_batch_items(self, states: List[StreamState], outputs: List[Any]) -> bool:
        """Send each request of a streamed batch its item of one step; True once every request is finished."""
        for state, output in zip(states, outputs):
            if not state.finished and self.is_cancelled(state.item):
                state.finished = True
            if not state.finished:
                self.send_item(state, output)
        return all(state.finished for state in states)

    def fail(self, state: StreamState, failure: HookFailedError) -> None:
        if state.finished:
            return
        state.finished = True
        if state.started:
            # The status line is already sent: log, and end the stream with an error marker.
            codec.exception_reply(failure.error, failure.hook)
            self.channel.send_one(state.item, 500, None, b"", True)
        else:
            self.channel.send_one(state.item, *failure.reply(self.error_body), True)

    def finish(self, states: List[StreamState]) -> None:
        done = [(state.item, 200, None, b"", True) for state in states if not state.finished]
        if done:
            self.channel.send(done)


async def _in_hook(hook: str, call: Any) -> Any:
    """Await ``call``; an exception it raises is ``hook``'s."""
    try:
        return await call
    except Exception as exc:
        raise HookFailedError(hook, exc) from None
