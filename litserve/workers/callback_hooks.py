"""A HookRunner that fires the worker callbacks around each hook; used only when callbacks were given."""

from __future__ import annotations

import inspect
from typing import Any, AsyncIterator, Iterator

from litserve.api import LitAPI
from litserve.callbacks import CallbackRunner, EventTypes
from litserve.options import ApiOptions
from litserve.workers.hooks import HookRunner


class CallbackHookRunner(HookRunner):
    """decode, predict and encode, each between its ``on_before_*`` and ``on_after_*`` events."""

    def __init__(self, lit_api: LitAPI, options: ApiOptions, callbacks: CallbackRunner) -> None:
        super().__init__(lit_api, options)
        self.callbacks = callbacks

    def _fire(self, event: EventTypes) -> None:
        self.callbacks.trigger_event(event.value, lit_api=self.lit_api)

    def decode(self, payload: Any, context: dict) -> Any:
        self._fire(EventTypes.BEFORE_DECODE_REQUEST)
        x = super().decode(payload, context)
        self._fire(EventTypes.AFTER_DECODE_REQUEST)
        return x

    def predict(self, x: Any, context: Any) -> Any:
        self._fire(EventTypes.BEFORE_PREDICT)
        y = super().predict(x, context)
        self._fire(EventTypes.AFTER_PREDICT)
        return y

    def encode(self, output: Any, context: Any) -> Any:
        self._fire(EventTypes.BEFORE_ENCODE_RESPONSE)
        return self._after_encoding(super().encode(output, context))

    async def adecode(self, payload: Any, context: dict) -> Any:
        self._fire(EventTypes.BEFORE_DECODE_REQUEST)
        x = await super().adecode(payload, context)
        self._fire(EventTypes.AFTER_DECODE_REQUEST)
        return x

    async def apredict(self, x: Any, context: Any) -> Any:
        self._fire(EventTypes.BEFORE_PREDICT)
        y = await super().apredict(x, context)
        self._fire(EventTypes.AFTER_PREDICT)
        return y

    async def aencode(self, output: Any, context: Any) -> Any:
        self._fire(EventTypes.BEFORE_ENCODE_RESPONSE)
        return self._after_encoding(await super().aencode(output, context))

    def _after_encoding(self, encoded: Any) -> Any:
        """A streamed response is encoded once its last item is out; anything else at once."""
        if inspect.isgenerator(encoded):
            return self._fire_after_items(encoded)
        if inspect.isasyncgen(encoded):
            return self._fire_after_async_items(encoded)
        self._fire(EventTypes.AFTER_ENCODE_RESPONSE)
        return encoded

    def _fire_after_items(self, items: Iterator[Any]) -> Iterator[Any]:
        try:
            yield from items
        finally:
            self._fire(EventTypes.AFTER_ENCODE_RESPONSE)

    async def _fire_after_async_items(self, items: AsyncIterator[Any]) -> AsyncIterator[Any]:
        try:
            async for item in items:
                yield item
        finally:
            self._fire(EventTypes.AFTER_ENCODE_RESPONSE)


def make_runner(lit_api: LitAPI, options: ApiOptions, callbacks: Any = None) -> HookRunner:
    """The plain runner when there are no callbacks, so requests pay nothing for them."""
    if callbacks:
        return CallbackHookRunner(lit_api, options, callbacks)
    return HookRunner(lit_api, options)
