"""Calling the user's hooks: context arguments and async hooks handled in one place."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Iterator

from litserve.api import LitAPI, accepts_context
from litserve.options import ApiOptions


class HookRunner:
    """Calls one LitAPI's hooks the way its signatures ask for."""

    def __init__(self, lit_api: LitAPI, options: ApiOptions) -> None:
        self.lit_api = lit_api
        self.options = options
        self._context = {
            name: accepts_context(getattr(lit_api, name)) for name in ("decode_request", "predict", "encode_response")
        }
        self._loop = None

    def decode(self, payload: Any, context: dict) -> Any:
        return self._call("decode_request", payload, context)

    def predict(self, x: Any, context: Any) -> Any:
        return self._call("predict", x, context)

    def encode(self, output: Any, context: Any) -> Any:
        return self._call("encode_response", output, context)

    def batch(self, inputs: list) -> Any:
        return self.resolve(self.lit_api.batch(inputs))

    def unbatch(self, output: Any) -> list:
        return self.resolve(self.lit_api.unbatch(output))

    def iterate(self, result: Any) -> Iterator[Any]:
        """Iterate a generator, async generator or plain iterable."""
        if inspect.isasyncgen(result):
            loop = self.event_loop()
            while True:
                try:
                    yield loop.run_until_complete(result.__anext__())
                except StopAsyncIteration:
                    return
        else:
            yield from result

    def _call(self, name: str, value: Any, context: Any) -> Any:
        hook = getattr(self.lit_api, name)
        result = hook(value, context=context) if self._context[name] else hook(value)
        return self.resolve(result)

    # --- the same hooks from inside a running event loop (enable_async) ---------------------------------

    async def adecode(self, payload: Any, context: dict) -> Any:
        return await self._acall("decode_request", payload, context)

    async def apredict(self, x: Any, context: Any) -> Any:
        return await self._acall("predict", x, context)

    async def aencode(self, output: Any, context: Any) -> Any:
        return await self._acall("encode_response", output, context)

    async def abatch(self, inputs: list) -> Any:
        return await _awaited(self.lit_api.batch(inputs))

    async def aunbatch(self, output: Any) -> list:
        return await _awaited(self.lit_api.unbatch(output))

    async def _acall(self, name: str, value: Any, context: Any) -> Any:
        hook = getattr(self.lit_api, name)
        result = hook(value, context=context) if self._context[name] else hook(value)
        return await _awaited(result)

    def resolve(self, result: Any) -> Any:
        if inspect.isawaitable(result):
            return self.event_loop().run_until_complete(result)
        return result

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """The worker's event loop: async ``setup`` and async hooks all run on this one."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop


async def _awaited(result: Any) -> Any:
    if inspect.isawaitable(result):
        return await result
    return result
