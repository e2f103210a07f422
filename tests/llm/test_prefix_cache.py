"""Automatic prefix caching: the same greedy tokens with the cache on and off, whatever is reused or evicted."""

from __future__ import annotations

from typing import Dict, List

from litserve.llm.engine import LLMEngine, SamplingParams
from litserve.llm.scheduler import PREFIX_WAIT_TOKENS

SYSTEM_A = "You are a helpful assistant. Answer briefly and politely, in plain words. " * 2
SYSTEM_B = "Numbers and letters: 7 3 9 q z k 4 8 1 w x v 2 6 5 j y p 0 " * 4


def _run(model_dir: str, prefix_caching: bool, waves: List[List[tuple]], capacity: int = 360, chunk: int = 16) -> tuple:
    """Feed ``waves`` of ``(uid, text, max_new_tokens)``: each wave is added in one step, after the last is done."""
    engine = LLMEngine(
        model_dir,
        max_total_token_num=capacity,
        max_running_requests=8,
        prefill_chunk_tokens=chunk,
        enable_prefix_caching=prefix_caching,
    )
    tokens: Dict[str, List[int]] = {}
    cached: Dict[str, int] = {}
    for wave in waves:
        for uid, text, max_new in wave:
            engine.add_request(uid, engine.encode_prompt(text), SamplingParams(max_new_tokens=max_new, ignore_eos=True))
        while engine.has_unfinished():
            for event in engine.step():
                tokens.setdefault(event.uid, []).append(event.token_id)
                if event.finished:
                    cached[event.uid] = event.cached_tokens
            stats = engine.stats()
            assert stats.kv_tokens_used == engine.kv.live() + stats.kv_tokens_cached <= capacity
    return tokens, cached, engine


def test_greedy_tokens_are_the_same_with_the_prefix_cache_on_and_off(llama_dir, monkeypatch):
    waves = [
        [("a1", SYSTEM_A + "What is AI?", 12)],
        # Two that share A's cached system prompt and each other, arriving in the same step, with a stranger.
        [("a2", SYSTEM_A + "Who are you?", 10), ("a3", SYSTEM_A + "Who are you today?", 9), ("x", "Hello", 6)],
        # The whole of a1 again (a retry): its prompt and what it generated are cached.
        [("a1 again", SYSTEM_A + "What is AI?", 12)],
        # Enough unrelated long prompts to need the space A's prefix holds: A is evicted ...
        [(f"b{i}", f"{i}: " + SYSTEM_B, 20) for i in range(4)],
        # ... and computed again, to the same tokens.
        [("a1 after eviction", SYSTEM_A + "What is AI?", 12)],
    ]
    off, off_cached, _ = _run(llama_dir, False, waves)
    # With the cache on, decodes also read every run of 8 slots or more in place (the rest is gathered).
    monkeypatch.setattr("litserve.llm.engine.IN_PLACE_MIN_BYTES", 8 * 2 * 64 * 4)
    on, on_cached, engine = _run(llama_dir, True, waves)
    assert engine._min_run == 8
    assert on == off
    assert off["a1 again"] == off["a1"] == off["a1 after eviction"]
    assert set(off_cached.values()) == {0}
    prompt_a = len(engine.encode_prompt(SYSTEM_A))
    assert on_cached["a1"] == 0 and on_cached["a2"] >= prompt_a - 1 and on_cached["a3"] >= prompt_a - 1
    assert on_cached["a1 again"] == len(engine.encode_prompt(SYSTEM_A + "What is AI?")) - 1
    assert on_cached["a1 after eviction"] < prompt_a  # it was evicted, then recomputed
    stats = engine.stats()
    assert stats.prefix_cache_hits == sum(on_cached.values()) and stats.prefix_cache_queries > stats.prefix_cache_hits


def test_copies_of_one_prompt_added_in_one_step_compute_it_once(llama_dir):
    # What a request with n = 4 choices becomes: four engine requests with the same prompt, in one step.
    text = SYSTEM_B + "Write a haiku."
    copies = [[(f"choice{i}", text, 8) for i in range(4)]]
    # The default chunk budget holds the whole prompt: without waiting, all four would compute it in one step.
    off, _, _ = _run(llama_dir, False, copies, chunk=256)
    on, cached, engine = _run(llama_dir, True, copies, chunk=256)
    assert on == off and len({tuple(tokens) for tokens in on.values()}) == 1
    prompt_len = len(engine.encode_prompt(text))
    assert prompt_len > 3 * PREFIX_WAIT_TOKENS
    assert cached["choice0"] == 0
    assert all(cached[f"choice{i}"] > prompt_len - PREFIX_WAIT_TOKENS for i in (1, 2, 3))
