"""How many intra-op threads an LLM worker's torch uses, so the model does not fight the API process for cores.

The API process (HTTP parsing, streaming, tokenizing on the way out) needs a core of its own while the worker
computes; torch's default takes every core, and on a small machine its spinning threads then slow both sides
down (on a 2-core machine: about 1.4x the requests per second of static batching with the default against
2.2x with one thread, see benchmarks/README.md). The rule: all the cores this process may run on but one,
at least one, and never more than torch's own default (its physical cores). Two exceptions borrow every core
for the work they do, because the API process has little to do meanwhile: a step that feeds at least
``PREFILL_SPLIT_TOKENS`` prompt tokens (compute-bound: on the 2-core machine a 1,500-token prompt prefilled in
105-120 ms on two threads against 210-280 on one), and decode attention over long contexts
(``ATTENTION_SPLIT_BYTES`` in ``engine.py``; memory-bound, each core brings its own bandwidth). Such steps serve
few tokens to stream (prompts are being read, or the few sequences are long).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

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


# Prompt tokens in one step from which its forward pass runs on every core (see the module docstring).
PREFILL_SPLIT_TOKENS = 128


class StepThreads:
    """Runs a step's forward pass on every core when it feeds many prompt tokens, else on the worker's threads."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self.base = torch.get_num_threads()
        self.every_core = max(self.base, available_cores())

    def for_prefill(self, prompt_tokens: int) -> StepThreads:
        self._wanted = self.every_core if prompt_tokens >= PREFILL_SPLIT_TOKENS else self.base
        return self

    def __enter__(self) -> None:
        if self._wanted != self.base:
            self._torch.set_num_threads(self._wanted)

    def __exit__(self, *exc_info) -> None:
        if self._wanted != self.base:
            self._torch.set_num_threads(self.base)
