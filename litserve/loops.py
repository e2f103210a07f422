"""Pluggable worker loops (LitServe-compatible: ``from litserve.loops import ContinuousBatchingLoop, Output``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litserve.utils import LitAPIStatus

if TYPE_CHECKING:
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner
    from litserve.workers.loops import WorkerLoop
    from litserve.workers.protocol import JsonProtocol

__all__ = ["ContinuousBatchingLoop", "LitAPIStatus", "Output"]


@dataclass
class Output:
    """One item that a continuous-batching ``step`` produced for the request ``uid``."""

    uid: Any
    output: Any
    status: LitAPIStatus = LitAPIStatus.OK


class ContinuousBatchingLoop:
    """Serve a LitAPI that generates step by step for a changing set of requests.

    Requests join the running set at the next step boundary, and every item a step yields goes to its own
    client at once. The LitAPI implements:

    - ``add_request(uid, request)``: take a new request (the parsed JSON body) into the running set.
    - ``step(prev_outputs) -> list[Output]``: advance every running request by one step.
    - ``has_capacity() -> bool`` (default: fewer running requests than ``max_batch_size``).
    - ``has_active_requests() -> bool`` (default: some request has not finished).
    - ``encode_response(output)``: turn one ``Output.output`` into what the client receives.
    - ``cancel(uid)`` (optional, litserve only): the client went away or the request timed out; free what
      the request holds. It is not called for requests that finished or reported ``ERROR``.

    Example::

        api = MyGenerator(stream=True, max_batch_size=8, loop=ContinuousBatchingLoop())
        LitServer(api).run()

    Args:
        max_sequence_length: kept for LitServe compatibility; the LitAPI decides when a request ends.
    """

    # The LitAPI methods this loop calls by name (the start-up check for misspelt hooks knows them).
    hooks = ("add_request", "step", "has_capacity", "has_active_requests", "cancel")

    def __init__(self, max_sequence_length: int = 2048) -> None:
        self.max_sequence_length = max_sequence_length

    def make_worker_loop(self, runner: HookRunner, channel: WorkerChannel, protocol: JsonProtocol) -> WorkerLoop:
        """The loop a worker process runs for this API."""
        from litserve.workers.continuous import ContinuousLoop

        return ContinuousLoop(runner, channel, protocol)

    def __repr__(self) -> str:
        return f"ContinuousBatchingLoop(max_sequence_length={self.max_sequence_length})"
