"""The LLM engine's Prometheus metrics, recorded by each LLM worker and added up at ``GET /metrics``.

On ``litserve.metrics.slots``, as the server's metrics: each worker owns a memory-mapped file of float64 slots in the
server's metrics directory (its own suffix, so the route totals never read it), written without locks or
system calls; the scrape adds every worker's file. Exported:

- gauges ``litserve_llm_kv_tokens_used``, ``litserve_llm_kv_tokens_capacity``,
  ``litserve_llm_kv_cache_utilization`` (slots running requests hold / capacity, 0 to 1),
  ``litserve_llm_requests_running``,
  ``litserve_llm_requests_waiting`` (requests with a worker, not yet generating: the engine's queue and
  those not handed to it yet);
- counters ``litserve_llm_prompt_tokens_total``, ``litserve_llm_generation_tokens_total``,
  ``litserve_llm_prefix_cache_queries_total`` (prompt tokens looked up in the prefix cache) and
  ``litserve_llm_prefix_cache_hits_total`` (of those, found there), and the gauge
  ``litserve_llm_kv_tokens_cached`` (slots the prefix cache holds);
- histograms ``litserve_llm_time_to_first_token_seconds`` (from the hand-off to a worker to the first
  token) and ``litserve_llm_time_per_output_token_seconds`` (per request: time after the first token
  divided by the tokens after it).
"""

from __future__ import annotations

import os
from typing import List, Optional

from litserve.metrics.exposition import histogram_buckets
from litserve.metrics.slots import SlotFile, observe
from litserve.metrics.slots import read_totals as read_slot_totals

SUFFIX = ".llm-metrics"
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

KV_USED, KV_CAPACITY, RUNNING, WAITING, PROMPT_TOKENS, GENERATION_TOKENS = range(6)
TTFT = 6
TPOT = TTFT + len(TTFT_BUCKETS) + 2  # a count per bucket, +Inf, then the sum
KV_CACHED = TPOT + len(TPOT_BUCKETS) + 2
PREFIX_QUERIES, PREFIX_HITS = KV_CACHED + 1, KV_CACHED + 2
KV_EVICTABLE = PREFIX_HITS + 1
SLOTS = KV_EVICTABLE + 1


class LLMMetrics:
    """What one LLM worker records. Without a directory the values stay in memory (metrics off)."""

    def __init__(self, directory: Optional[str], worker_id: int) -> None:
        self._slots = SlotFile(SLOTS)
        if directory is not None:
            self._slots.open(os.path.join(directory, f"worker-{worker_id}{SUFFIX}"))

    @property
    def values(self) -> memoryview:
        return self._slots.values

    def set_state(self, kv_used: int, kv_capacity: int, running: int, waiting: int) -> None:
        values = self.values
        values[KV_USED] = kv_used
        values[KV_CAPACITY] = kv_capacity
        values[RUNNING] = running
        values[WAITING] = waiting

    def set_prefix_cache(self, cached: int, queried: int, found: int, evictable: int = 0) -> None:
        """The engine's prefix cache: slots it holds (``evictable`` of them unused), and its running totals of
        prompt tokens looked up and found."""
        values = self.values
        values[KV_CACHED] = cached
        values[KV_EVICTABLE] = evictable
        values[PREFIX_QUERIES] = queried
        values[PREFIX_HITS] = found

    def count_prompt_tokens(self, count: int) -> None:
        self.values[PROMPT_TOKENS] += count

    def count_generated_tokens(self, count: int) -> None:
        self.values[GENERATION_TOKENS] += count

    def observe_ttft(self, seconds: float) -> None:
        observe(self.values, TTFT, TTFT_BUCKETS, seconds)

    def observe_tpot(self, seconds: float) -> None:
        observe(self.values, TPOT, TPOT_BUCKETS, seconds)

    def close(self) -> None:
        """The worker is stopping: its gauges no longer count (counters stay, as counters must)."""
        self.set_state(0, 0, 0, 0)
        self.values[KV_CACHED] = self.values[KV_EVICTABLE] = 0
        self._slots.close()


def read_totals(directory: str) -> List[float]:
    """The sum, slot by slot, of every LLM worker's file in ``directory``."""
    return read_slot_totals(directory, SLOTS, SUFFIX)


def families(directory: Optional[str]) -> list:
    """prometheus-client metric families of the LLM workers whose files are in ``directory``."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    totals = read_totals(directory) if directory else [0.0] * SLOTS
    result: list = []
    for name, index, text in (
        ("litserve_llm_kv_tokens_used", KV_USED, "KV cache token slots holding a live token."),
        ("litserve_llm_kv_tokens_capacity", KV_CAPACITY, "KV cache token slots in all (max_total_token_num)."),
        ("litserve_llm_requests_running", RUNNING, "Requests admitted and generating."),
        ("litserve_llm_requests_waiting", WAITING, "Requests with a worker waiting to start generating."),
        ("litserve_llm_kv_tokens_cached", KV_CACHED, "KV cache token slots the prefix cache holds."),
    ):
        result.append(GaugeMetricFamily(name, text, value=totals[index]))
    capacity = totals[KV_CAPACITY]
    # Cached prefixes no running request uses are free for the taking: as vLLM's kv_cache_usage_perc, not in use.
    utilization = (totals[KV_USED] - totals[KV_EVICTABLE]) / capacity if capacity else 0.0
    result.append(
        GaugeMetricFamily(
            "litserve_llm_kv_cache_utilization",
            "Share of the KV cache's token slots in use, 0 to 1.",
            value=utilization,
        )
    )
    result.append(
        CounterMetricFamily("litserve_llm_prompt_tokens", "Prompt tokens of admitted requests.", totals[PROMPT_TOKENS])
    )
    result.append(
        CounterMetricFamily("litserve_llm_generation_tokens", "Tokens generated.", value=totals[GENERATION_TOKENS])
    )
    for name, index, text in (
        ("litserve_llm_prefix_cache_queries", PREFIX_QUERIES, "Prompt tokens looked up in the prefix cache."),
        ("litserve_llm_prefix_cache_hits", PREFIX_HITS, "Prompt tokens found in the prefix cache (not computed)."),
    ):
        result.append(CounterMetricFamily(name, text, value=totals[index]))
    for name, start, bounds, text in (
        ("litserve_llm_time_to_first_token_seconds", TTFT, TTFT_BUCKETS, "Hand-off to a worker until the first token."),
        ("litserve_llm_time_per_output_token_seconds", TPOT, TPOT_BUCKETS, "Time per token after the first."),
    ):
        buckets, total = histogram_buckets(totals, start, bounds)
        family = HistogramMetricFamily(name, text)
        family.add_metric([], buckets, sum_value=total)
        result.append(family)
    return result
