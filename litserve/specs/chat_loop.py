"""The worker loop of ``OpenAISpec``: chat completions (and Responses) requests through the hooks.

Each choice of each request is a unit; batches are made of units. The skeleton is written once, as
coroutines over the ``call_*`` primitives of ``HookLoop``: ``SyncChatLoop`` calls the hooks directly,
``AsyncChatLoop`` (``enable_async=True`` with async hooks) awaits them, one task per request or batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, List

from litserve import codec
from litserve.specs.openai_responses import RESPONSES_PATH, ResponsesReply, ResponsesRequest
from litserve.specs.openai_types import ChatCompletionRequest
from litserve.specs.openai_wire import SSE_HEADERS, ChatCompletionReply, openai_error_body, sse_error_event
from litserve.transport.worker_channel import WorkerChannel, WorkItem
from litserve.workers.async_loops import AsyncLoop
from litserve.workers.hooks import HookRunner
from litserve.workers.skeleton import HookFailedError, HookLoop
from litserve.workers.sync_loops import SyncLoop

if TYPE_CHECKING:
    from litserve.specs.base import LitSpec


class _Unit:
    """One choice of one request, run through the hooks."""

    __slots__ = ("reply", "choice", "x", "context")

    def __init__(self, reply: ChatCompletionReply, choice: int, x: Any, context: dict) -> None:
        self.reply = reply
        self.choice = choice
        self.x = x
        self.context = context


class ChatRequests(HookLoop):
    """Runs chat requests: parse, decode each choice, predict (per unit or per batch of units), reply."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, spec: LitSpec) -> None:
        super().__init__(runner, channel)
        self.spec = spec
        self.error_body = openai_error_body

    def work(self, items: List[WorkItem]) -> Any:
        return self.serve_chat(items)

    async def serve_chat(self, items: List[WorkItem]) -> None:
        units = await self.prepare_units(items)
        if not units:
            return
        if self.max_batch_size == 1:
            for unit in units:
                await self.run_units([unit], batched=False)
        else:
            await self.run_units(units, batched=True)

    async def prepare_units(self, items: List[WorkItem]) -> List[_Unit]:
        units = []
        for item in items:
            try:
                request, reply = self.parse(item)
            except Exception as exc:
                self.channel.send_one(item, *codec.exception_reply(exc, "decode_request", self.error_body), True)
                continue
            for choice in range(request.n):
                context = self.spec.request_context(request)
                try:
                    x = await self.call_decode(request, context)
                except Exception as exc:
                    self.fail(reply, exc, "decode_request")
                    break
                units.append(_Unit(reply, choice, x, context))
        return units

    def parse(self, item: WorkItem) -> tuple:
        """The chat request an item carries, and the reply to build: a chat completion or a Responses reply."""
        if item.path == RESPONSES_PATH:
            original = codec.decode_payload(item.content_type, item.body, ResponsesRequest)
            request = original.to_chat_request()
            return request, ResponsesReply(item, request, self.spec.model_name, original)
        request = codec.decode_payload(item.content_type, item.body, ChatCompletionRequest)
        return request, ChatCompletionReply(item, request, self.spec.model_name)

    async def run_units(self, units: List[_Unit], batched: bool) -> None:
        result = None
        hook = "predict"
        try:
            if batched:
                hook = "batch"
                x = await self.call_batch([unit.x for unit in units])
                hook = "predict"
                contexts = [unit.context for unit in units]
                result = await self.call_encode(await self.call_predict(x, contexts), contexts)
                async for batch_output in self.items_or_value(result):
                    hook = "unbatch"
                    outputs = await self.unbatch(batch_output, len(units))
                    hook = "encode_response"
                    if self.emit_batch(units, outputs):
                        break
                    hook = "predict"
            else:
                unit = units[0]
                result = await self.call_encode(await self.call_predict(unit.x, unit.context), unit.context)
                async for output in self.items_or_value(result):
                    hook = "encode_response"
                    self.emit(unit, output)
                    if unit.reply.finished:
                        break
                    hook = "predict"
        except HookFailedError as failure:
            self.fail_units(units, failure.error, failure.hook)
        except Exception as exc:
            self.fail_units(units, exc, hook)
        finally:
            await self.close(result)
        for unit in units:
            self.choice_done(unit)

    async def items_or_value(self, result: Any) -> AsyncIterator[Any]:
        """Items of a (async) generator or iterator; any other value is a single item."""
        if hasattr(result, "__next__") or hasattr(result, "__anext__"):
            async for item in self.iterate(result):
                yield item
        else:
            yield result

    # --- replies -------------------------------------------------------------------------------------

    def emit_batch(self, units: List[_Unit], outputs: List[Any]) -> bool:
        """Give each choice of a batch its output of one step; True once every choice is finished."""
        for unit, output in zip(units, outputs):
            self.emit(unit, output)
        return all(unit.reply.finished for unit in units)

    def fail_units(self, units: List[_Unit], exc: BaseException, hook: str) -> None:
        for unit in units:
            self.fail(unit.reply, exc, hook)

    def emit(self, unit: _Unit, output: Any) -> None:
        reply = unit.reply
        if reply.finished:
            return
        if self.is_cancelled(reply.item):
            reply.finished = True
            return
        event = reply.add(unit.choice, output)
        if event is not None:
            headers = None
            if not reply.started:
                headers = SSE_HEADERS
                reply.started = True
            self.channel.send_one(reply.item, 200, headers, event, False)

    def choice_done(self, unit: _Unit) -> None:
        reply = unit.reply
        reply.choices[unit.choice].done = True
        if reply.finished or not all(state.done for state in reply.choices):
            return
        reply.finished = True
        if reply.streaming:
            self.channel.send_one(
                reply.item, 200, None if reply.started else SSE_HEADERS, reply.final_stream_events(), True
            )
        else:
            self.channel.send_one(reply.item, 200, None, reply.completion_body(), True)

    def fail(self, reply: ChatCompletionReply, exc: BaseException, hook: str) -> None:  # type: ignore[override]
        if reply.finished:
            return
        reply.finished = True
        status, headers, body = codec.exception_reply(exc, hook, self.error_body)
        if reply.started:
            # Mid-stream: an OpenAI error event makes the SDK raise; then the stream ends.
            self.channel.send_one(reply.item, 200, None, sse_error_event(body), True)
        else:
            self.channel.send_one(reply.item, status, headers, body, True)


class SyncChatLoop(ChatRequests, SyncLoop):
    """Chat requests one at a time (or one batch at a time), hooks called directly."""


class AsyncChatLoop(ChatRequests, AsyncLoop):
    """Chat requests as tasks on the worker's event loop, hooks awaited."""
