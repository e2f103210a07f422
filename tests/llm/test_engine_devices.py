"""Default KV capacity per device, and the engine on a GPU (skipped without one)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from litserve.llm.engine import DEFAULT_CPU_KV_TOKENS, LLMEngine, SamplingParams

from .test_engine import PROMPTS, reference_greedy

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_cpu_default_capacity_is_the_documented_default(llama_dir):
    engine = LLMEngine(llama_dir)
    assert engine.stats().kv_tokens_capacity == DEFAULT_CPU_KV_TOKENS
    assert engine.pools.keys[0].shape[1] == DEFAULT_CPU_KV_TOKENS


@needs_gpu
def test_gpu_capacity_comes_from_free_memory_and_greedy_matches_transformers(llama_dir):
    free_before, _ = torch.cuda.mem_get_info()
    engine = LLMEngine(llama_dir, device="cuda:0", dtype="float32")
    per_token = 2 * len(engine.pools.keys) * engine.pools.keys[0][:, 0].numel() * 4
    assert engine.capacity > 1000
    assert engine.capacity * per_token < free_before  # it fits in what was free

    requests = {
        i: (engine.encode_prompt(text), SamplingParams(max_new_tokens=5 + i, ignore_eos=True))
        for i, text in enumerate(PROMPTS[:8])
    }
    generated = {uid: [] for uid in requests}
    for uid, (prompt_ids, params) in requests.items():
        engine.add_request(uid, prompt_ids, params)
    while engine.has_unfinished():
        for event in engine.step():
            generated[event.uid].append(event.token_id)
    assert engine.stats().kv_tokens_used == 0
    reference = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    for uid, (prompt_ids, params) in requests.items():
        expected, trusted = reference_greedy(reference, prompt_ids, params.max_new_tokens)
        assert generated[uid][:trusted] == expected[:trusted]
