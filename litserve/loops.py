"""Which loop serves an API: the loops users name, and the choice ``loop="auto"`` makes.

LitServe-compatible: ``from litserve.loops import ContinuousBatchingLoop, Output``. This module only declares
and chooses; the loops themselves run in the worker process (``litserve.workers``), which imports this
module and never the other way round, so the API process can ask the same questions without loading them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from litserve.api import is_async_hook
from litserve.status import LitAPIStatus

if TYPE_CHECKING:
    from litserve.options import ApiOptions

# Requests (or batches) one async worker runs at once; more wait in its queue until one finishes.
MAX_CONCURRENT_TASKS = 1024

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

_HOOKS = ("decode_request", "batch", "predict", "unbatch", "encode_response")


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

    def __repr__(self) -> str:
        return f"ContinuousBatchingLoop(max_sequence_length={self.max_sequence_length})"


def resolve_loop(options: ApiOptions) -> ApiOptions:
    """``options`` with their loop checked: ``"auto"`` (also for a loop ``"auto"`` would pick, once it fits the
    other options) or a ContinuousBatchingLoop. Raises ``ValueError`` naming ``loop`` otherwise."""
    value = options.loop
    if isinstance(value, str) and value == "auto":
        return options
    if isinstance(value, DefaultLoop):
        value.check(options.stream, options.max_batch_size)
        return dataclasses.replace(options, loop="auto")
    if not isinstance(value, ContinuousBatchingLoop):
        raise ValueError(
            f"loop must be 'auto', ContinuousBatchingLoop() or one of litserve.loops' SingleLoop(), BatchedLoop(), "
            f"StreamingLoop(), BatchedStreamingLoop(), got {value!r} (LitServe's custom LitLoop subclasses, which "
            "run over its internal queues, are not supported)"
        )
    if not options.stream:
        raise ValueError("loop=ContinuousBatchingLoop() streams each request's outputs: pass stream=True as well")
    return options


def has_async_hooks(lit_api: Any) -> bool:
    """Whether any per-request hook is ``async def`` (or an async generator)."""
    return any(is_async_hook(getattr(lit_api, name)) for name in _HOOKS)


def runs_async(lit_api: Any, options: Any) -> bool:
    """Whether the API's workers run the async loop: ``enable_async`` with at least one ``async def`` hook."""
    return options.loop == "auto" and options.enable_async and has_async_hooks(lit_api)


def requests_run_at_once(lit_api: Any, options: Any) -> int:
    """How many requests one worker of the API runs at the same time; more wait in its queue."""
    if runs_async(lit_api, options):
        return MAX_CONCURRENT_TASKS * options.max_batch_size
    return options.max_batch_size
