"""How many intra-op threads an LLM worker's torch uses, so the model does not fight the API process for cores.

The API process (HTTP parsing, streaming, tokenizing on the way out) needs a core of its own while the worker
computes; torch's default takes every core, and on a small machine its spinning threads then slow both sides
down (on a 2-core machine: about 1.4x the requests per second of static batching with the default against
2.2x with one thread, see benchmarks/README.md). The rule: all the cores this process may run on but one,
at least one, and never more than torch's own default (its physical cores). Two exceptions borrow every core
for a step whose work is long next to what it gives the API process to stream: one that feeds at least
``PREFILL_SPLIT_TOKENS`` prompt tokens (compute-bound: on the 2-core machine a 1,500-token prompt prefilled in
105-120 ms on two threads against 210-280 on one), or one that reads ``BYTES_PER_STREAMED_TOKEN_SPLIT`` or more
of weights, keys and values per token it streams (memory-bound, and each core brings its own bandwidth: a large
model, or long contexts; decode attention over 4 x 1,700 tokens of the tiny model 863 us a layer on one core,
534 on two). Small models with many short chats stay on the worker's threads.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator, Optional

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


# A step runs on every core when it feeds this many prompt tokens (compute-bound)...
PREFILL_SPLIT_TOKENS = 128
# ...or reads this many bytes of weights, keys and values per token it streams (memory-bound).
BYTES_PER_STREAMED_TOKEN_SPLIT = 4 * 1024**2


class StepThreads:
    """Chooses each step's threads: the worker's own, or every core for steps whose work is long next to what
    they give the API process to stream (see the module docstring), and sets torch's for the forward pass.

    Example:
        >>> threads = StepThreads(weight_bytes=10 * 2**20, kv_bytes_per_token=8192, base=1, every_core=2)
        >>> threads.choose(prompt_tokens=0, streamed_tokens=16, context_tokens=1600)  # short chats: 1.5 MiB each
        1
        >>> threads.choose(prompt_tokens=0, streamed_tokens=4, context_tokens=6800)  # long contexts: 16 MiB each
        2
        >>> threads.choose(prompt_tokens=256, streamed_tokens=16, context_tokens=1600)  # a prompt chunk
        2
    """

    def __init__(
        self, weight_bytes: int, kv_bytes_per_token: int, base: Optional[int] = None, every_core: Optional[int] = None
    ) -> None:
        import torch

        self._torch = torch
        self.weight_bytes = weight_bytes
        self.kv_bytes_per_token = kv_bytes_per_token
        self.base = base if base is not None else torch.get_num_threads()
        self.every_core = max(self.base, every_core if every_core is not None else available_cores())

    def choose(self, prompt_tokens: int, streamed_tokens: int, context_tokens: int) -> int:
        """Threads for a step feeding ``prompt_tokens``, streaming ``streamed_tokens`` and reading the keys and
        values of ``context_tokens``."""
        if prompt_tokens >= PREFILL_SPLIT_TOKENS:
            return self.every_core
        read = self.weight_bytes + context_tokens * self.kv_bytes_per_token
        if read >= BYTES_PER_STREAMED_TOKEN_SPLIT * max(1, streamed_tokens):
            return self.every_core
        return self.base

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
