"""How many intra-op threads an LLM worker's torch uses, so the model does not fight the API process for cores.

The API process (HTTP parsing, streaming, tokenizing on the way out) needs a core of its own while the worker
computes; torch's default takes every core, and on a small machine its spinning threads then slow both sides
down (on a 2-core machine: about 1.4x the requests per second of static batching with the default against
2.2x with one thread, see benchmarks/README.md). The rule: all the cores this process may run on but one,
at least one, and never more than torch's own default (its physical cores). Two exceptions borrow every core
for work that is long next to what its step gives the API process to stream: the forward pass of a step that
feeds at least ``PREFILL_SPLIT_TOKENS`` prompt tokens (compute-bound: on the 2-core machine a 1,500-token prompt
prefilled in 105-120 ms on two threads against 210-280 on one) or that reads ``WEIGHT_BYTES_PER_STREAMED_TOKEN_
SPLIT`` or more of a large model's weights per token it streams (memory-bound, and each core brings its own
bandwidth: a 1024-wide, 8-layer model's decode step 64-79 -> 50-57 ms); and decode attention over long contexts
(``ATTENTION_SPLIT_BYTES`` a layer: 4 x 1,700 tokens of a 256-wide model 863 us a layer on one core, 534 on
two), but only in a step whose forward pass stays on the worker's threads: after a pass on every core, torch's
OpenMP threads spin on the other cores for a while and the kernel's own threads wait for them (a 1024-wide
model's decode step for one short chat took 25.3 ms with the attention split that way, 19.7 ms without). A
small model's matmuls and elementwise ops only get slower on two threads (served, the tiny model lost 25-35% on
every row when they did), so they stay on the worker's threads.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

logger = logging.getLogger(__name__)


def available_cores() -> int:
    """CPUs this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def default_num_threads(cores: Optional[int] = None, torch_default: Optional[int] = None) -> int:
    """Intra-op threads for a worker: one core left to the API process, at least one, at most torch's default.

    Example:
        >>> default_num_threads(cores=2, torch_default=2), default_num_threads(cores=16, torch_default=8)
        (1, 8)
    """
    if cores is None:
        cores = available_cores()
    if torch_default is None:
        import torch

        torch_default = torch.get_num_threads()
    return max(1, min(torch_default, cores - 1))


def set_worker_threads(num_threads: Optional[int] = None) -> int:
    """Set torch's intra-op threads to ``num_threads`` (default: ``default_num_threads()``); returns it."""
    import torch

    threads = num_threads if num_threads is not None else default_num_threads()
    torch.set_num_threads(threads)
    logger.info("LLM worker: %d intra-op thread(s) of %d core(s)", threads, available_cores())
    return threads


# A step's forward pass runs on every core when it feeds this many prompt tokens (compute-bound)...
PREFILL_SPLIT_TOKENS = 128
# ...or when the model's weights are this large and the step reads this much of them per token it streams
# (memory-bound matmuls big enough for two threads; a small model's ops only get slower on two).
LARGE_MODEL_BYTES = 64 * 1024**2
WEIGHT_BYTES_PER_STREAMED_TOKEN_SPLIT = 8 * 1024**2
# Decode attention runs on every core from this many bytes of keys and values a layer (memory-bound), in a step
# whose forward pass runs on the worker's own threads.
ATTENTION_SPLIT_BYTES = 8 * 1024**2


class StepThreads:
    """Chooses each step's threads (the worker's own, or every core where the work is long next to what the
    step gives the API process to stream, see the module docstring) and sets torch's for the forward pass.

    Example:
        >>> threads = StepThreads(weight_bytes=10 * 2**20, kv_bytes_per_token_layer=2048, base=1, every_core=2)
        >>> threads.choose(prompt_tokens=0, streamed_tokens=16, context_tokens=1600)  # short chats
        (1, 1)
        >>> threads.choose(prompt_tokens=0, streamed_tokens=4, context_tokens=6800)  # long contexts: attention
        (1, 2)
        >>> threads.choose(prompt_tokens=1024, streamed_tokens=16, context_tokens=1600)  # a prompt chunk
        (2, 1)
    """

    def __init__(
        self,
        weight_bytes: int,
        kv_bytes_per_token_layer: int,
        base: Optional[int] = None,
        every_core: Optional[int] = None,
    ) -> None:
        import torch

        self._torch = torch
        self.weight_bytes = weight_bytes
        self.kv_bytes_per_token_layer = kv_bytes_per_token_layer
        self.base = base if base is not None else torch.get_num_threads()
        self.every_core = max(self.base, every_core if every_core is not None else available_cores())

    def choose(self, prompt_tokens: int, streamed_tokens: int, context_tokens: int) -> Tuple[int, int]:
        """``(forward pass threads, decode attention threads)`` for a step feeding ``prompt_tokens``,
        streaming ``streamed_tokens`` and attending over the keys and values of ``context_tokens``."""
        forward = self.base
        if prompt_tokens >= PREFILL_SPLIT_TOKENS or (
            self.weight_bytes >= LARGE_MODEL_BYTES
            and self.weight_bytes >= WEIGHT_BYTES_PER_STREAMED_TOKEN_SPLIT * max(1, streamed_tokens)
        ):
            forward = self.every_core
        attention = self.base
        if forward == self.base and context_tokens * self.kv_bytes_per_token_layer >= ATTENTION_SPLIT_BYTES:
            attention = self.every_core
        return forward, attention

    @contextmanager
    def running(self, threads: int) -> Iterator[None]:
        """torch's intra-op threads are ``threads`` inside, the worker's own after."""
        if threads == self.base:
            yield
            return
        self._torch.set_num_threads(threads)
        try:
            yield
        finally:
            self._torch.set_num_threads(self.base)
