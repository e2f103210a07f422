"""The decode attention over KV pools, in place or gathered, against plain attention over each sequence's slots."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from litserve.llm.kv import KVPools, slot_runs
from litserve.llm.runner import STEP_KWARG, StepBatch, plan_decodes, token_attention


def _reference(query, key_pool, value_pool, slots, scale):
    keys = key_pool[:, slots].unsqueeze(0)  # [1, kv_heads, L, D]
    values = value_pool[:, slots].unsqueeze(0)
    gqa = query.shape[1] != keys.shape[1]
    return F.scaled_dot_product_attention(query, keys, values, scale=scale, enable_gqa=gqa)[0, :, 0]


@pytest.mark.parametrize("min_run", [1, 24, 10**9])  # all in place, mixed, all gathered
@pytest.mark.parametrize("kv_heads", [4, 2])
@pytest.mark.parametrize("cpu_flash", [True, False])  # torch's CPU kernel, or the matmuls other devices use
def test_decode_attention_equals_plain_attention_over_each_sequences_slots(min_run, kv_heads, cpu_flash, monkeypatch):
    if not cpu_flash:
        monkeypatch.setattr("litserve.llm.runner._CPU_FLASH", None)
    rng = random.Random(min_run + kv_heads)
    torch.manual_seed(0)
    heads, head_dim, capacity = 4, 16, 600
    pools = KVPools(1, capacity, kv_heads, head_dim, torch.float32, "cpu")
    pools.keys[0].normal_()
    pools.values[0].normal_()
    free = list(range(capacity))
    rng.shuffle(free)
    prefix = list(range(100, 160))  # a cached prefix three sequences share, contiguous
    free = [slot for slot in free if slot not in prefix]
    sequences = []
    for i in range(7):
        own = [free.pop() for _ in range(rng.randint(1, 40))]  # scattered
        if i < 3:
            run_start = 300 + 40 * i  # and a contiguous stretch
            free = [slot for slot in free if not run_start <= slot < run_start + 30]
            own = list(range(run_start, run_start + 30)) + own
        sequences.append((prefix[: 60 - 10 * (i % 2)] if i < 3 else []) + own)
    sequences.sort(key=len)
    table = torch.zeros((len(sequences), 200), dtype=torch.long)
    for row, slots in enumerate(sequences):
        table[row, : len(slots)] = torch.tensor(slots)
    runs = [[list(run) for run in slot_runs(slots)] for slots in sequences]
    lengths = [len(slots) for slots in sequences]
    plan = plan_decodes(table, list(range(len(sequences))), lengths, runs, min_run, group_size=3)
    assert bool(plan.jobs) == (min_run < 10**9) and bool(plan.groups) == (min_run > 1)
    # This step's tokens: one per sequence, its keys and values written to its last slot.
    count = len(sequences)
    query = torch.randn(1, heads, count, head_dim)
    key = torch.randn(1, kv_heads, count, head_dim)
    value = torch.randn(1, kv_heads, count, head_dim)
    last = torch.tensor([slots[-1] for slots in sequences])
    step = StepBatch(
        input_ids=torch.zeros(count, dtype=torch.long),
        positions=torch.zeros(count, dtype=torch.long),
        slots=last,
        logits_rows=torch.arange(count),
        decode_plan=plan,
        pools=pools,
        slot_table=table,
        decode_table_rows=list(range(count)),
        decode_lengths=lengths,
    )
    module = SimpleNamespace(layer_idx=0)
    output, _ = token_attention(module, query, key, value, None, scaling=0.25, **{STEP_KWARG: step})
    for row, slots in enumerate(sequences):
        expected = _reference(query[:, :, row : row + 1], pools.keys[0], pools.values[0], slots, 0.25)
        torch.testing.assert_close(output[0, row], expected, rtol=1e-5, atol=1e-5)
