"""LLMEngine against transformers' own model: same greedy tokens whatever the batch does around a request."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from litserve.llm.engine import LLMEngine, RequestTooLargeError, SamplingParams
from litserve.llm.runner import DECODE_GROUP_SIZE

PROMPTS = [
    "Hello",
    "The quick brown fox jumps over the lazy dog.",
    "東京は日本の首都です。",
    "def add(a, b):\n    return a + b\n" * 2,
    "A token-level KV cache wastes no memory: each token holds exactly one slot. " * 2,
    "Emoji test: 🚀✨🙂",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14159",
    "Les élèves étudient la thermodynamique à l'université. Über die Brücke gehen wir morgen früh.",
    "What is AI?",
    "Serving large language models with continuous batching keeps every request moving. " * 3,
    "x",
    "机器学习模型在服务器上运行。",
    "user assistant system",
    "Hello, world! How are you today? I am fine, thank you.",
    "The quick brown fox " * 6,
    "a b c d e f g",
    "Over the lazy dog, again and again and again.",
    "3.14159 2024 1000",
]
NEAR_TIE = 1e-3


def reference_greedy(model, prompt_ids, count):
    """Batch-1 greedy tokens from transformers, and how many of them are beyond any near tie."""
    ids = torch.tensor([prompt_ids])
    tokens, trusted = [], None
    with torch.no_grad():
        for position in range(count):
            logits = model(ids).logits[0, -1]
            top2 = logits.topk(2).values
            if trusted is None and (top2[0] - top2[1]).item() < NEAR_TIE:
                trusted = position + 1  # this token may legitimately differ; nothing after it is comparable
            token = int(logits.argmax())
            tokens.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return tokens, count if trusted is None else trusted


def live_tokens(engine) -> int:
    """Slots running requests hold alone, plus those of the prefix cache."""
    return engine.kv.live() + engine.kv.cached


@pytest.mark.parametrize(
    "arch_dir, prefix_caching, decode_kernel",
    [("llama_dir", True, "native"), ("llama_dir", True, "torch"), ("gpt2_dir", False, "native")],
)
def test_greedy_tokens_match_transformers_under_continuous_batching(
    arch_dir, prefix_caching, decode_kernel, request, monkeypatch
):
    model_dir = request.getfixturevalue(arch_dir)
    if decode_kernel == "torch":  # the CPU path where no C compiler is found (and the one other devices take)
        monkeypatch.setenv("LITSERVE_NATIVE_KERNELS", "0")
    monkeypatch.setitem(DECODE_GROUP_SIZE, "cpu", 3)  # several decode groups of unequal lengths each step
    engine = LLMEngine(
        model_dir,
        max_total_token_num=700,
        max_running_requests=10,
        prefill_chunk_tokens=16,
        enable_prefix_caching=prefix_caching,
    )
    requests = {}
    for i, text in enumerate(PROMPTS):
        requests[i] = (engine.encode_prompt(text), SamplingParams(max_new_tokens=4 + (i * 7) % 21, ignore_eos=True))
    assert max(len(ids) for ids, _ in requests.values()) > 2 * 16  # some prompts need several prefill chunks
    generated = {uid: [] for uid in requests}
    texts = {uid: "" for uid in requests}
    finish = {}
    saw_waiting = False

    def run_step():
        nonlocal saw_waiting
        for event in engine.step():
            if event.uid == "neighbour":
                continue
            generated[event.uid].append(event.token_id)
            texts[event.uid] += event.text
            assert event.output_tokens == len(generated[event.uid])
            assert event.prompt_tokens == len(requests[event.uid][0])
            if event.finished:
                finish[event.uid] = event.finish_reason
        stats = engine.stats()
        assert stats.kv_tokens_used == live_tokens(engine) <= stats.kv_tokens_capacity
        saw_waiting = saw_waiting or (stats.waiting > 0 and stats.running > 0)

    first, later = list(requests)[:10], list(requests)[10:]
    engine.add_request("neighbour", engine.encode_prompt("A neighbour who hangs up. " * 3), SamplingParams(64))
    for uid in first:
        engine.add_request(uid, *requests[uid])
    for _ in range(4):
        run_step()
    for uid in later:  # arrivals while the first ones decode
        engine.add_request(uid, *requests[uid])
    run_step()
    before = engine.kv.live()
    engine.cancel("neighbour")
    assert engine.kv.live() < before  # its slots are free at once (or cached, evictable, with prefix caching)
    assert engine.stats().kv_tokens_used == live_tokens(engine)
    for _ in range(500):
        if not engine.has_unfinished():
            break
        run_step()
    assert not engine.has_unfinished()
    assert (
        engine.stats().kv_tokens_used
        == engine.stats().kv_tokens_cached
        == (engine.kv.tree.evictable if prefix_caching else 0)
    )
    assert saw_waiting  # the small capacity made some requests wait for others to finish

    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    compared = total = 0
    for uid, (prompt_ids, params) in requests.items():
        assert finish[uid] == "length" and len(generated[uid]) == params.max_new_tokens
        expected, trusted = reference_greedy(reference, prompt_ids, params.max_new_tokens)
        assert generated[uid][:trusted] == expected[:trusted], f"request {uid} diverged from transformers"
        if trusted == len(expected):
            assert texts[uid] == engine.tokenizer.decode(expected, skip_special_tokens=True)
        compared += trusted
        total += len(expected)
    assert compared >= 0.8 * total  # near ties stay rare, so the comparison means something


def test_same_seed_gives_the_same_tokens_alone_and_in_a_crowd(llama_dir):
    engine = LLMEngine(llama_dir, max_total_token_num=2000)
    params = SamplingParams(max_new_tokens=12, do_sample=True, temperature=1.2, top_p=0.9, seed=1234, ignore_eos=True)
    prompt = engine.encode_prompt("The quick brown fox")

    def run(uids_and_params):
        for uid, sampling in uids_and_params:
            engine.add_request(uid, prompt if uid == "me" else engine.encode_prompt(f"other {uid}"), sampling)
        tokens = []
        while engine.has_unfinished():
            tokens += [event.token_id for event in engine.step() if event.uid == "me"]
        return tokens

    alone = run([("me", params)])
    others = [(i, SamplingParams(max_new_tokens=3 + i, do_sample=True, seed=i)) for i in range(6)]
    crowd = run(others[:3] + [("me", params)] + others[3:])
    assert crowd == alone and len(alone) == 12


def test_stop_sequence_ends_with_stop_and_is_not_returned(gpt2_dir):
    engine = LLMEngine(gpt2_dir, max_total_token_num=1000)
    prompt = engine.encode_prompt("Hello, world!")

    def generate(params):
        engine.add_request("r", prompt, params)
        events = []
        while engine.has_unfinished():
            events += engine.step()
        return events

    full = generate(SamplingParams(max_new_tokens=20, ignore_eos=True))
    full_text = "".join(event.text for event in full)
    stop = full_text[len(full_text) // 2 : len(full_text) // 2 + 2]
    cut = generate(SamplingParams(max_new_tokens=20, ignore_eos=True, stop_sequences=[stop]))
    assert cut[-1].finished and cut[-1].finish_reason == "stop"
    assert "".join(event.text for event in cut) == full_text[: full_text.index(stop)]
    assert all(not event.finished for event in cut[:-1])


def test_eos_stops_unless_ignored_and_never_before_min_new_tokens(llama_dir):
    engine = LLMEngine(llama_dir, max_total_token_num=1000)
    prompt = engine.encode_prompt("What is AI?")
    engine.add_request("probe", prompt, SamplingParams(max_new_tokens=1))
    (first,) = engine.step()
    engine.eos_token_ids = {first.token_id}  # make the model's greedy choice the end-of-sequence token

    def generate(params):
        engine.add_request("r", prompt, params)
        events = []
        while engine.has_unfinished():
            events += engine.step()
        return events

    stopped = generate(SamplingParams(max_new_tokens=10))
    assert [(e.token_id, e.finish_reason) for e in stopped] == [(first.token_id, "stop")]
    ignored = generate(SamplingParams(max_new_tokens=10, ignore_eos=True))
    assert len(ignored) == 10 and ignored[-1].finish_reason == "length"
    held_off = generate(SamplingParams(max_new_tokens=10, min_new_tokens=4))
    assert first.token_id not in [e.token_id for e in held_off[:4]]
    assert len(held_off) >= 4


def test_requests_that_can_never_fit_are_refused_with_the_numbers(llama_dir):
    engine = LLMEngine(llama_dir, max_total_token_num=64)
    prompt = engine.encode_prompt("Hello " * 10)
    with pytest.raises(RequestTooLargeError) as info:
        engine.add_request("big", prompt, SamplingParams(max_new_tokens=60))
    assert f"{len(prompt)} tokens + max_new_tokens 60 = {len(prompt) + 60} tokens" in str(info.value)
    assert "KV capacity of 64 tokens" in str(info.value)
    with pytest.raises(ValueError, match="prompt is empty"):
        engine.add_request("empty", [], SamplingParams())
    engine.add_request("ok", prompt, SamplingParams(max_new_tokens=4))
    with pytest.raises(ValueError, match="already in the engine"):
        engine.add_request("ok", prompt, SamplingParams(max_new_tokens=4))
    assert engine.stats().waiting == 1


def test_a_request_that_fills_the_whole_capacity_runs_to_the_end(llama_dir):
    engine = LLMEngine(llama_dir, max_total_token_num=64, prefill_chunk_tokens=8)
    prompt = engine.encode_prompt("Hello " * 20)[:40]
    engine.add_request("full", prompt, SamplingParams(max_new_tokens=64 - len(prompt), ignore_eos=True))
    events = []
    for _ in range(200):  # 5 prompt chunks and 24 decodes; a stalled admission would never produce one
        if not engine.has_unfinished():
            break
        events.extend(engine.step())
    assert [event.output_tokens for event in events] == list(range(1, 25))
    assert events[-1].finish_reason == "length" and engine.stats().running == 0


def test_chat_prompts_use_the_tokenizer_chat_template(llama_dir):
    engine = LLMEngine(llama_dir, max_total_token_num=256)
    messages = [{"role": "user", "content": "What is AI?"}]
    text = engine.encode_chat(messages)
    assert engine.tokenizer.decode(text) == "<|im_start|>user\nWhat is AI?<|im_end|>\n<|im_start|>assistant\n"
    assert engine.model_name.startswith("tiny-llama")


@pytest.mark.parametrize("decode_kernel", ["native", "torch"])
@pytest.mark.parametrize("arch_dir", ["mistral_window_dir", "qwen2_dir"])
def test_greedy_tokens_match_transformers_for_mistral_with_sliding_window_and_qwen2(
    arch_dir, decode_kernel, request, monkeypatch
):
    model_dir = request.getfixturevalue(arch_dir)
    if decode_kernel == "torch":
        monkeypatch.setenv("LITSERVE_NATIVE_KERNELS", "0")
    engine = LLMEngine(model_dir, max_total_token_num=1000, prefill_chunk_tokens=8)
    requests = {
        i: (engine.encode_prompt(text), SamplingParams(max_new_tokens=6 + 3 * i, ignore_eos=True))
        for i, text in enumerate(PROMPTS[1:9])
    }
    generated = {uid: [] for uid in requests}
    for uid, (prompt_ids, params) in requests.items():
        engine.add_request(uid, prompt_ids, params)
        for event in engine.step():  # each arrives while the earlier ones decode
            generated[event.uid].append(event.token_id)
    while engine.has_unfinished():
        for event in engine.step():
            generated[event.uid].append(event.token_id)
    reference = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    compared = total = 0
    for uid, (prompt_ids, params) in requests.items():
        expected, trusted = reference_greedy(reference, prompt_ids, params.max_new_tokens)
        assert generated[uid][:trusted] == expected[:trusted], f"request {uid} diverged from transformers"
        compared += trusted
        total += len(expected)
    assert compared >= 0.8 * total


def test_a_heavy_repetition_penalty_keeps_greedy_output_free_of_repeats(gpt2_dir):
    engine = LLMEngine(gpt2_dir, max_total_token_num=1000)
    prompt = engine.encode_prompt("The quick brown fox")

    def generate(params):
        engine.add_request("r", prompt, params)
        tokens = []
        while engine.has_unfinished():
            tokens += [event.token_id for event in engine.step()]
        return tokens

    plain = generate(SamplingParams(max_new_tokens=24, ignore_eos=True))
    assert len(set(plain)) < len(plain)  # the random model repeats itself ...
    penalized = generate(SamplingParams(max_new_tokens=24, ignore_eos=True, repetition_penalty=100.0))
    assert len(set(penalized)) == len(penalized)  # ... not with the penalty
    assert not set(penalized) & set(prompt)
