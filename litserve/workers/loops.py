"""Worker loops: how queued requests are run through the hooks (single, batched, streaming)."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, List, Optional

from litserve import codec
from litserve.loops import (
    ContinuousBatchingLoop,
    requests_run_at_once,  # noqa: F401 (app.py imports it from here)
    runs_async,
)
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
    """Base loop: waits for requests and hands them to ``step``."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, protocol: Optional[JsonProtocol] = None) -> None:
        self.runner = runner
        self.channel = channel
        self.protocol = protocol or JsonProtocol()
        self.error_body = self.protocol.error_body
        self.max_batch_size = runner.options.max_batch_size
        self.batch_timeout = runner.options.batch_timeout

    def run(self) -> None:
        channel = self.channel
        while True:
            if not channel.pending:
                channel.wait(None)
            items = self.collect()
            if items:
                channel.mark_started(items)
                self.step(items)

    def collect(self) -> List[WorkItem]:
        """Take up to ``max_batch_size`` requests, waiting at most ``batch_timeout`` for more to arrive."""
        channel = self.channel
        items = channel.take(self.max_batch_size)
        if not items or len(items) >= self.max_batch_size or self.batch_timeout <= 0:
            return items
        give_up_at = time.monotonic() + self.batch_timeout
        while len(items) < self.max_batch_size:
            remaining = give_up_at - time.monotonic()
            if remaining <= 0:
                break
            channel.wait(remaining)
            items.extend(channel.take(self.max_batch_size - len(items)))
        return items

    def step(self, items: List[WorkItem]) -> None:
        raise NotImplementedError

    def decode(self, item: WorkItem, context: dict) -> Any:
        payload = None
        try:
            payload = self.protocol.parse(item)
            self.protocol.prepare_context(payload, context)
            return self.runner.decode(payload, context)
        except Exception as exc:
            raise HookFailedError("decode_request", self.protocol.client_error(exc, payload) or exc) from None

    def decode_each(self, items: List[WorkItem]) -> tuple:
        """Decode every request; a failing one is answered at once and left out of the batch."""
        live, inputs, contexts = [], [], []
        for item in items:
            context: dict = {}
            try:
                inputs.append(self.decode(item, context))
            except HookFailedError as failure:
                self.channel.send_one(item, *failure.reply(self.error_body), True)
                continue
            live.append(item)
            contexts.append(context)
        return live, inputs, contexts

    def unbatch(self, output: Any, expected: int) -> list:
        try:
            outputs = self.runner.unbatch(output)
        except Exception as exc:
            raise HookFailedError("unbatch", exc) from None
        if len(outputs) != expected:
            error = RuntimeError(f"unbatch returned {len(outputs)} outputs for a batch of {expected} requests")
            raise HookFailedError("unbatch", error)
        return outputs

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

    def send_batch_items(
        self, states: List[StreamState], outputs: List[Any], is_cancelled: Callable[[WorkItem], bool]
    ) -> bool:
        """Send each request of a streamed batch its item of one step; True once every request is finished."""
        for state, output in zip(states, outputs):
            if not state.finished and is_cancelled(state.item):
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


class SingleLoop(WorkerLoop):
    """One request at a time: decode -> predict -> encode."""

    def step(self, items: List[WorkItem]) -> None:
        for item in items:
            self.channel.send_one(item, *self.serve(item), True)

    def serve(self, item: WorkItem) -> codec.Reply:
        context: dict = {}
        runner = self.runner
        try:
            x = self.decode(item, context)
        except HookFailedError as failure:
            return failure.reply(self.error_body)
        try:
            y = runner.predict(x, context)
        except Exception as exc:
            return codec.exception_reply(exc, "predict", self.error_body)
        try:
            return self.protocol.reply(runner.encode(y, context), context)
        except Exception as exc:
            return codec.exception_reply(exc, "encode_response", self.error_body)


class BatchedLoop(WorkerLoop):
    """decode each -> batch -> predict -> unbatch -> encode each, one reply message per batch."""

    def step(self, items: List[WorkItem]) -> None:
        live, inputs, contexts = self.decode_each(items)
        if not live:
            return
        runner = self.runner
        try:
            try:
                x = runner.batch(inputs)
            except Exception as exc:
                raise HookFailedError("batch", exc) from None
            try:
                y = runner.predict(x, contexts)
            except Exception as exc:
                raise HookFailedError("predict", exc) from None
            outputs = self.unbatch(y, len(live))
        except HookFailedError as failure:
            reply = failure.reply(self.error_body)
            self.channel.send([(item, *reply, True) for item in live])
            return
        replies = []
        for item, output, context in zip(live, outputs, contexts):
            try:
                reply = self.protocol.reply(runner.encode(output, context), context)
            except Exception as exc:
                reply = codec.exception_reply(exc, "encode_response", self.error_body)
            replies.append((item, *reply, True))
        self.channel.send(replies)


class StreamingLoop(WorkerLoop):
    """Generators: every item ``encode_response`` yields is sent as soon as it exists."""

    def step(self, items: List[WorkItem]) -> None:
        if self.max_batch_size == 1:
            for item in items:
                self.stream_one(item)
        else:
            self.stream_batch(items)

    def stream_one(self, item: WorkItem) -> None:
        runner = self.runner
        state = StreamState(item)
        context: dict = {}
        encoded = None
        try:
            x = self.decode(item, context)
            hook = "predict"
            try:
                encoded = runner.encode(runner.predict(x, context), context)
                for output in runner.iterate(encoded):
                    if self.channel.is_cancelled(item):
                        state.finished = True
                        break
                    self.send_item(state, output)
            except HookFailedError:
                raise
            except Exception as exc:
                raise HookFailedError(hook, exc) from None
        except HookFailedError as failure:
            self.fail(state, failure)
        finally:
            close_generator(encoded)
        self.finish([state])

    def stream_batch(self, items: List[WorkItem]) -> None:
        live, inputs, contexts = self.decode_each(items)
        if not live:
            return
        runner = self.runner
        states = [StreamState(item) for item in live]
        encoded = None
        try:
            try:
                x = runner.batch(inputs)
                encoded = runner.encode(runner.predict(x, contexts), contexts)
                batches = runner.iterate(encoded)
                for batch_output in batches:
                    outputs = self.unbatch(batch_output, len(states))
                    if self.send_batch_items(states, outputs, self.channel.is_cancelled):
                        break
            except HookFailedError:
                raise
            except Exception as exc:
                raise HookFailedError("predict", exc) from None
        except HookFailedError as failure:
            for state in states:
                self.fail(state, failure)
        finally:
            close_generator(encoded)
        self.finish(states)


def close_generator(generator: Any) -> None:
    """Stop a user generator early so its ``finally`` blocks run."""
    close = getattr(generator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.debug("closing a response generator failed", exc_info=True)


def make_loop(runner: HookRunner, channel: WorkerChannel, protocol: JsonProtocol) -> WorkerLoop:
    """Pick the loop that fits the API's options."""
    options = runner.options
    if isinstance(options.loop, ContinuousBatchingLoop):
        from litserve.workers.continuous import ContinuousLoop

        return ContinuousLoop(runner, channel, protocol)
    if runs_async(runner.lit_api, options):
        from litserve.workers.async_loops import AsyncLoop

        return AsyncLoop(runner, channel, protocol)
    if options.stream:
        return StreamingLoop(runner, channel, protocol)
    if options.max_batch_size > 1:
        return BatchedLoop(runner, channel, protocol)
    return SingleLoop(runner, channel, protocol)
