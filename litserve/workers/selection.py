"""Which worker loop serves an API in this worker process."""

from __future__ import annotations

from litserve.loops import ContinuousBatchingLoop, runs_async
from litserve.transport.worker_channel import WorkerChannel
from litserve.workers.async_loops import AsyncLoop
from litserve.workers.continuous import ContinuousLoop
from litserve.workers.hooks import HookRunner
from litserve.workers.protocol import JsonProtocol
from litserve.workers.skeleton import WorkerLoop
from litserve.workers.sync_loops import SyncLoop


def make_loop(runner: HookRunner, channel: WorkerChannel, protocol: JsonProtocol) -> WorkerLoop:
    """The loop that fits the API's options: continuous batching, async (one task per request) or sync."""
    options = runner.options
    if isinstance(options.loop, ContinuousBatchingLoop):
        return ContinuousLoop(runner, channel, protocol)
    if runs_async(runner.lit_api, options):
        return AsyncLoop(runner, channel, protocol)
    return SyncLoop(runner, channel, protocol)
