"""The worker loop for ``enable_async=True``: every request (or batch) is a task on the worker's event loop.

While one request awaits (a remote call, ``asyncio.sleep``, an async model client), the others run: decode,
predict and encode of many requests overlap in one worker, for single, batched and streaming APIs. A
request whose client left or that timed out has its task cancelled, so its hooks stop at their next
``await``. Sync hooks of such an API simply run on the loop, one at a time.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, AsyncIterator, Dict, List, Optional, Set, Tuple

from litserve.loops import MAX_CONCURRENT_TASKS
from litserve.transport.worker_channel import ParentGoneError, WorkItem
from litserve.workers.skeleton import HookLoop

logger = logging.getLogger("litserve")


class AsyncLoop(HookLoop):
    """Starts a task per request (per batch when batching) as soon as it arrives."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tasks: Dict[Tuple[int, int], asyncio.Task] = {}
        self._task_keys: Dict[asyncio.Task, List[Tuple[int, int]]] = {}
        self._watched: Set[int] = set()
        self._wakeup: Optional[asyncio.Event] = None
        self._parent_gone = False

    def run(self) -> None:
        # The loop ``setup`` ran on, so what it created (clients, sessions) is usable in the hooks.
        self.runner.event_loop().run_until_complete(self.main())

    async def main(self) -> None:
        self._wakeup = asyncio.Event()
        self.channel.on_cancel = self._cancelled
        self.channel.on_requests = self._arrived
        self._watch()
        self._arrived()  # requests read before the loop started
        while True:
            await self._wait_until(lambda: bool(self.channel.pending) and len(self._task_keys) < MAX_CONCURRENT_TASKS)
            if self.max_batch_size > 1:
                items = await self._collect_batch()
                if items:
                    self._start(items, self.work(items))
            else:
                for item in self.channel.take(MAX_CONCURRENT_TASKS - len(self._task_keys)):
                    self._start([item], self.work([item]))

    # --- arrivals ----------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Read new messages whenever a connection (or the parent's sentinel) becomes readable."""
        loop = asyncio.get_running_loop()
        current = set(self.channel.readable_fds())
        for fd in self._watched - current:
            loop.remove_reader(fd)  # a dropped connection
        for fd in current - self._watched:
            loop.add_reader(fd, self._readable, fd)
        self._watched = current

    def _readable(self, fd: int) -> None:
        if fd == self.channel.parent_sentinel:
            self._parent_gone = True
        else:
            self.channel.drain()
            self._watch()
        self._arrived()

    def _arrived(self) -> None:
        self._wakeup.set()

    async def _wait_until(self, condition: Any, timeout: Optional[float] = None) -> bool:
        """Wait for ``condition()`` to hold after arrivals or finished tasks; False if ``timeout`` passed."""
        loop = asyncio.get_running_loop()
        give_up_at = None if timeout is None else loop.time() + timeout
        while True:
            if self._parent_gone:
                raise ParentGoneError()
            if condition():
                return True
            self._wakeup.clear()
            if give_up_at is None:
                await self._wakeup.wait()
                continue
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return condition()

    async def _collect_batch(self) -> List[WorkItem]:
        items = self.channel.take(self.max_batch_size)
        if not items or len(items) >= self.max_batch_size or self.batch_timeout <= 0:
            return items
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.batch_timeout
        while len(items) < self.max_batch_size:
            remaining = give_up_at - loop.time()
            if remaining <= 0 or not await self._wait_until(lambda: bool(self.channel.pending), remaining):
                break
            items.extend(self.channel.take(self.max_batch_size - len(items)))
        return items

    # --- tasks -------------------------------------------------------------------------------------

    def _start(self, items: List[WorkItem], work: Any) -> None:
        self.channel.mark_started(items)
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        keys = [item.key for item in items]
        self._task_keys[task] = keys
        for key in keys:
            self._tasks[key] = task
        task.add_done_callback(self._finished)

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            pass  # its clients are gone (left or timed out): nobody waits for a reply
        except ParentGoneError:
            self._parent_gone = True
            self._arrived()
        except Exception:
            logger.exception("unexpected error while serving a request")

    def _finished(self, task: asyncio.Task) -> None:
        for key in self._task_keys.pop(task, ()):
            if self._tasks.get(key) is task:
                del self._tasks[key]
            if task.cancelled() or self.channel.was_cancelled(key):
                self.channel.forget_cancellation(key)
        self._arrived()  # room for another task

    def _cancelled(self, key: Tuple[int, int]) -> None:
        """A client left or timed out: stop its task, unless others in the same batch still wait."""
        task = self._tasks.get(key)
        if task is None or task.done():
            return
        if all(self.channel.was_cancelled(other) for other in self._task_keys.get(task, ())):
            task.cancel()

    # --- primitives: the hooks awaited, so other requests run while one waits ---------------------------

    async def call_decode(self, payload: Any, context: dict) -> Any:
        return await self.runner.adecode(payload, context)

    async def call_batch(self, inputs: list) -> Any:
        return await self.runner.abatch(inputs)

    async def call_predict(self, x: Any, context: Any) -> Any:
        return await self.runner.apredict(x, context)

    async def call_unbatch(self, output: Any) -> list:
        return await self.runner.aunbatch(output)

    async def call_encode(self, output: Any, context: Any) -> Any:
        return await self.runner.aencode(output, context)

    def iterate(self, result: Any) -> AsyncIterator[Any]:
        return iterate_async(result)

    async def close(self, result: Any) -> None:
        await close_async(result)

    def is_cancelled(self, item: WorkItem) -> bool:
        """Whether ``item``'s cancellation has been read (the event loop reads new messages as they come)."""
        return self.channel.was_cancelled(item.key)


async def iterate_async(result: Any) -> AsyncIterator[Any]:
    """Iterate an async generator or a sync iterable, letting other tasks run between its items.

    An async generator need not await anything between items (its model call may block): without a turn
    for the event loop after each item, one stream would hold the worker and requests that arrived meanwhile
    would start only when it ends.
    """
    if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
        async for item in result:
            yield item
            await asyncio.sleep(0)
        return
    for item in result:
        yield item
        await asyncio.sleep(0)


async def close_async(generator: Any) -> None:
    """Stop a user generator early so its ``finally`` blocks run."""
    try:
        if inspect.isasyncgen(generator):
            await generator.aclose()
        elif inspect.isgenerator(generator):
            generator.close()
    except Exception:
        logger.debug("closing a response generator failed", exc_info=True)
