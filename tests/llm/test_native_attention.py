"""The engine's C decode-attention kernel against plain attention over each sequence's slots, and its fallback."""

from __future__ import annotations

import logging
import random

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from litserve.llm import native
from litserve.llm.native import DecodeAttention, decode_attention_library


def _reference(queries, key_pool, value_pool, slots, scale, window):
    if window is not None:
        slots = slots[-window:]
    keys = key_pool[:, slots].unsqueeze(0)  # [1, kv_heads, L, D]
    values = value_pool[:, slots].unsqueeze(0)
    gqa = queries.shape[1] != keys.shape[1]
    return F.scaled_dot_product_attention(queries, keys, values, scale=scale, enable_gqa=gqa)[0, :, 0]


@pytest.fixture(scope="module")
def library():
    compiled = decode_attention_library()
    if compiled is None:
        pytest.skip("no C compiler on this machine: the engine uses torch's kernels")
    return compiled


@pytest.mark.parametrize("head_dim", [64, 48])  # a specialised width, and the generic loop
@pytest.mark.parametrize("kv_heads", [4, 2, 1])  # plain, grouped-query, multi-query
@pytest.mark.parametrize("window", [None, 7])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_equals_plain_attention_over_each_sequences_slots(library, head_dim, kv_heads, window, threads):
    rng = random.Random(head_dim * kv_heads + threads)
    torch.manual_seed(kv_heads)
    heads, capacity = 4, 900
    key_pool = torch.randn(kv_heads, capacity, head_dim)
    value_pool = torch.randn(kv_heads, capacity, head_dim)
    free = list(range(200, capacity))
    rng.shuffle(free)
    shared = list(range(0, 120))  # a cached prefix some sequences read, contiguous
    sequences = [
        (shared[: rng.randint(1, 120)] if i % 2 else []) + [free.pop() for _ in range(rng.randint(1, 60))]
        for i in range(9)
    ]
    table = torch.zeros((12, 200), dtype=torch.long)
    rows = rng.sample(range(12), len(sequences))
    for row, slots in zip(rows, sequences):
        table[row, : len(slots)] = torch.tensor(slots)
    lengths = [len(slots) for slots in sequences]
    count = len(sequences) + 2  # two more rows in the step (a prefill), which the kernel must leave alone
    queries = torch.randn(1, count, heads, head_dim).transpose(1, 2)[0]  # [heads, N, D], strided as models give
    out = torch.full((count, heads, head_dim), 7.0)
    attend = DecodeAttention(library, table, torch.tensor(rows), torch.tensor(lengths), max(lengths), threads)
    attend(queries, key_pool, value_pool, 0.2, window, out)
    for b, slots in enumerate(sequences):
        expected = _reference(queries[:, b : b + 1].unsqueeze(0), key_pool, value_pool, slots, 0.2, window)
        torch.testing.assert_close(out[b], expected, rtol=1e-5, atol=1e-5)
    assert torch.all(out[len(sequences) :] == 7.0)


def test_no_compiler_means_torch_kernels_with_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setenv("LITSERVE_CACHE_DIR", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="litserve.llm.native"):
        assert native._load() is None
    assert "could not compile the decode attention kernel" in caplog.text
    assert not list(tmp_path.rglob("*.so"))  # nothing half-built is left to be loaded later


def test_the_kernel_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("LITSERVE_NATIVE_KERNELS", "0")
    assert decode_attention_library() is None


def test_a_build_is_cached_per_source_and_cpu(tmp_path, monkeypatch, library):
    monkeypatch.setenv("LITSERVE_CACHE_DIR", str(tmp_path))
    assert native._load() is not None
    built = list(tmp_path.rglob("decode_attention-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert native._load() is not None  # loaded from the cache, not compiled again
    assert built[0].stat().st_mtime_ns == stamp
