"""OpenAI chat requests with ``enable_async=True``: each request (or batch) is a task on the worker's loop.

The wire format (events, usage, errors) is ``ChatLoop``'s; only the hooks are awaited, so the async hooks of
many chat requests (say, calls to a remote model, or an async token generator) run at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, List

from litserve import codec
from litserve.specs.openai import ChatCompletionRequest, ChatLoop, ChatReply, _Unit, openai_error_body
from litserve.transport.worker_channel import WorkItem
from litserve.workers.async_loops import AsyncLoop, close_async, iterate_async
from litserve.workers.loops import HookFailedError

if TYPE_CHECKING:
    from litserve.specs.openai import OpenAISpec
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner


class AsyncChatLoop(AsyncLoop):
    """Chat requests through awaited hooks; replies written by a ``ChatLoop``."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, spec: OpenAISpec) -> None:
        super().__init__(runner, channel)
        self.spec = spec
        self.chat = ChatLoop(runner, channel, spec)
        self.chat.is_cancelled = self._was_cancelled
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
                request = codec.decode_payload(item.content_type, item.body, ChatCompletionRequest)
            except Exception as exc:
                self.channel.send_one(item, *codec.exception_reply(exc, "decode_request", self.error_body), True)
                continue
            reply = ChatReply(item, request, self.spec.model_name)
            for choice in range(request.n):
                context = self.spec.request_context(request)
                try:
                    x = await self.runner.adecode(request, context)
                except Exception as exc:
                    self.chat.fail(reply, exc, "decode_request")
                    break
                units.append(_Unit(reply, choice, x, context))
        return units

    async def run_units(self, units: List[_Unit], batched: bool) -> None:
        runner, chat = self.runner, self.chat
        result = None
        hook = "predict"
        try:
            if batched:
                hook = "batch"
                x = await runner.abatch([unit.x for unit in units])
                hook = "predict"
                contexts = [unit.context for unit in units]
                result = await runner.aencode(await runner.apredict(x, contexts), contexts)
                async for batch_output in _items_or_value(result):
                    hook = "unbatch"
                    outputs = await self.unbatch_outputs(batch_output, len(units))
                    hook = "encode_response"
                    if chat.emit_batch(units, outputs):
                        break
                    hook = "predict"
            else:
                unit = units[0]
                result = await runner.aencode(await runner.apredict(unit.x, unit.context), unit.context)
                async for output in _items_or_value(result):
                    hook = "encode_response"
                    chat.emit(unit, output)
                    if unit.reply.finished:
                        break
                    hook = "predict"
        except HookFailedError as failure:
            chat.fail_units(units, failure.error, failure.hook)
        except Exception as exc:
            chat.fail_units(units, exc, hook)
        finally:
            await close_async(result)
        for unit in units:
            chat.choice_done(unit)


async def _items_or_value(result: Any) -> AsyncIterator[Any]:
    """Items of a (async) generator or iterator; any other value is a single item."""
    if hasattr(result, "__next__") or hasattr(result, "__anext__"):
        async for item in iterate_async(result):
            yield item
    else:
        yield result
