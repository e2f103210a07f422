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

__all__ = [
    "BatchedLoop",
    "BatchedStreamingLoop",
    "ContinuousBatchingLoop",
    "LitAPIStatus",
    "LitLoop",
    "Output",
    "SingleLoop",
    "StreamingLoop",
    "get_default_loop",
]


@dataclass
class Output:
    """What a continuous-batching ``step`` produced for the request ``uid``: an item (``OK``), the end of its
    response (``FINISH_STREAMING``, whose ``output`` is not sent) or its failure (``ERROR``)."""

    uid: Any
    output: Any
    status: LitAPIStatus = LitAPIStatus.OK


class LitLoop:
    """Base of the loops ``LitAPI(loop=...)`` takes (LitServe's name).

    litserve runs its own worker loops; a loop here chooses one. A subclass that implements LitServe's
    ``run(lit_api, device, worker_id, request_queue, transport, ...)`` over LitServe's internal queues is not
    supported: ``LitServer`` refuses it with a message.
    """

    def make_worker_loop(self, runner: HookRunner, channel: WorkerChannel, protocol: JsonProtocol) -> WorkerLoop:
        """The loop a worker process runs for this API."""
        raise NotImplementedError(f"{type(self).__name__} does not choose a litserve worker loop")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DefaultLoop(LitLoop):
    """One of the loops ``loop="auto"`` picks, named explicitly; it must fit the API's ``stream`` and
    ``max_batch_size``, and then serves exactly as ``"auto"`` does."""

    stream = False
    batched = False

    def check(self, stream: bool, max_batch_size: int) -> None:
        """Raise ``ValueError`` if this loop cannot serve an API with these options."""
        name = type(self).__name__
        if stream != self.stream:
            raise ValueError(f"loop={name}() {'needs' if self.stream else 'cannot serve'} stream=True")
        if not self.batched and max_batch_size > 1:
            batched = "BatchedStreamingLoop" if self.stream else "BatchedLoop"
            raise ValueError(f"loop={name}() serves one request at a time: use {batched}() for max_batch_size > 1")


class SingleLoop(DefaultLoop):
    """One request at a time, one reply each."""


class BatchedLoop(DefaultLoop):
    """Requests gathered into batches of up to ``max_batch_size`` (waiting at most ``batch_timeout``)."""

    batched = True


class StreamingLoop(DefaultLoop):
    """One request at a time, its generator's items streamed."""

    stream = True


class BatchedStreamingLoop(DefaultLoop):
    """Batches of requests whose generator yields one list of items (one per request) at each step."""

    stream = True
    batched = True


def get_default_loop(stream: bool, max_batch_size: int, enable_async: bool = False) -> DefaultLoop:
    """The loop ``loop="auto"`` picks for these options (async hooks run on the same choice here)."""
    if stream:
        return BatchedStreamingLoop() if max_batch_size > 1 else StreamingLoop()
    return BatchedLoop() if max_batch_size > 1 else SingleLoop()


class ContinuousBatchingLoop(LitLoop):
    """Serve a LitAPI that generates step by step for a changing set of requests.

    Requests join the running set at the next step boundary, and every item a step yields goes to its own
    client at once. The LitAPI implements:

    - ``add_request(uid, request)``: take a new request (the parsed JSON body) into the running set.
    - ``step(prev_outputs) -> list[Output]``: advance every running request by one step. A request's items
      are ``OK`` outputs; ``Output(uid, "", LitAPIStatus.FINISH_STREAMING)`` ends its response (its payload
      is not sent).
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
