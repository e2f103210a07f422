"""The sync driver of the request skeleton: one request (or batch) at a time, hooks called directly."""

from __future__ import annotations

import logging
import time
from typing import Any, AsyncIterator, List

from litserve.transport.worker_channel import WorkItem
from litserve.workers.skeleton import HookLoop

logger = logging.getLogger("litserve")


class SyncLoop(HookLoop):
    """Waits for requests, gathers batches, and serves each through the skeleton to its end."""

    def run(self) -> None:
        channel = self.channel
        while True:
            if not channel.pending:
                channel.wait(None)
            items = self.collect()
            if items:
                channel.mark_started(items)
                self.step(items)

    def step(self, items: List[WorkItem]) -> None:
        if self.max_batch_size > 1:
            run_to_end(self.work(items))
        else:
            for item in items:
                run_to_end(self.work([item]))

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

    # --- primitives: direct calls (an awaitable a hook returns runs on the worker's event loop) -----------

    async def call_decode(self, payload: Any, context: dict) -> Any:
        return self.runner.decode(payload, context)

    async def call_batch(self, inputs: list) -> Any:
        return self.runner.batch(inputs)

    async def call_predict(self, x: Any, context: Any) -> Any:
        return self.runner.predict(x, context)

    async def call_unbatch(self, output: Any) -> list:
        return self.runner.unbatch(output)

    async def call_encode(self, output: Any, context: Any) -> Any:
        return self.runner.encode(output, context)

    async def iterate(self, result: Any) -> AsyncIterator[Any]:
        for item in self.runner.iterate(result):
            yield item

    async def close(self, result: Any) -> None:
        close_generator(result)

    def is_cancelled(self, item: WorkItem) -> bool:
        return self.channel.is_cancelled(item)  # reads new messages first: nothing else reads them meanwhile


def run_to_end(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (it awaits only direct calls) to its end, without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a sync worker loop awaited something that suspends")


def close_generator(generator: Any) -> None:
    """Stop a user generator early so its ``finally`` blocks run."""
    close = getattr(generator, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            logger.debug("closing a response generator failed", exc_info=True)
