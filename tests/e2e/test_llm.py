"""LLMAPI against real servers: LightLLM and OpenAI wire formats, greedy equality with transformers, budget."""

from __future__ import annotations

import json
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import httpx
import pytest

from tests.conftest import start_server, wait_for

pytest.importorskip("transformers")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from litserve.llm.testing import build_tiny_model  # noqa: E402

API = "litserve.llm:LLMAPI"
# The shared 2-core machine can be slow; these bounds only catch hangs.
pytestmark = pytest.mark.timeout(900)
PROMPTS = [
    "What is AI?",
    "def add(a, b):",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "user: hello",
    "Machines that think",
    "a",
    "Serving models over HTTP is " * 12,
    "1 2 3 4 5 6 7 8",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Dict[str, str]:
    root = tmp_path_factory.mktemp("llm-models")
    return {arch: build_tiny_model(str(root / f"tiny-{arch}"), arch=arch) for arch in ("llama", "gpt2")}


@pytest.fixture(scope="module")
def llama_server(models, tmp_path_factory):
    # A small prefill chunk makes the longer prompts prefill over several steps, next to running decodes.
    kwargs = {"model_dir": models["llama"], "prefill_chunk_tokens": 16}
    server = start_server(tmp_path_factory.mktemp("llama"), API, api_kwargs=kwargs, accelerator="cpu", timeout=120)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gpt2_server(models, tmp_path_factory):
    kwargs = {"model_dir": models["gpt2"], "prefill_chunk_tokens": 16}
    server = start_server(tmp_path_factory.mktemp("gpt2"), API, api_kwargs=kwargs, accelerator="cpu", timeout=120)
    yield server
    server.stop()


def stream_events(client: httpx.Client, url: str, body: dict) -> List[dict]:
    with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [json.loads(line[len("data:") :]) for line in response.iter_lines() if line.startswith("data:")]


def greedy_ids(server, prompt: str, max_new_tokens: int) -> List[int]:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": max_new_tokens, "ignore_eos": True}}
    with httpx.Client(timeout=120) as client:
        return [event["token"]["id"] for event in stream_events(client, f"{server.url}/generate_stream", body)]


def reference_greedy(model, tokenizer, prompt: str, max_new_tokens: int, device: str = "cpu") -> tuple:
    """transformers' own greedy tokens for ``prompt`` alone, and how many of them are free of near-ties."""
    ids = torch.tensor([tokenizer.encode(prompt)], device=device)
    tokens, trusted, past = [], None, None
    with torch.no_grad():
        for position in range(max_new_tokens):
            out = model(input_ids=ids, cache=past, use_cache=True)
            logits = out.logits[0, -1]
            top2 = torch.topk(logits, 2).values
            if trusted is None and float(top2[0] - top2[1]) < 1e-3:
                trusted = position + 1  # compare up to and including the first near-tie
            token = int(torch.argmax(logits))
            tokens.append(token)
            past = out.cache
            ids = torch.tensor([[token]], device=device)
    return tokens, trusted if trusted is not None else max_new_tokens


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_greedy_tokens_equal_transformers_for_concurrent_mixed_requests(arch, models, request):
    server = request.getfixturevalue(f"{arch}_server")
    model = AutoModelForCausalLM.from_pretrained(models[arch], dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(models[arch])
    cases = [(PROMPTS[i % len(PROMPTS)], 4 + (i * 7) % 29) for i in range(16)]

    def hang_up(index: int) -> None:  # neighbours that leave mid-stream
        body = {"inputs": PROMPTS[index], "parameters": {"max_new_tokens": 200, "ignore_eos": True}}
        with httpx.Client(timeout=120) as client:
            with client.stream("POST", f"{server.url}/generate_stream", json=body) as response:
                for count, _ in enumerate(response.iter_lines()):
                    if count > 6:
                        break

    with ThreadPoolExecutor(20) as pool:
        aborted = [pool.submit(hang_up, i) for i in range(3)]
        futures = []
        for prompt, max_new in cases:
            futures.append(pool.submit(greedy_ids, server, prompt, max_new))
            time.sleep(0.02)  # staggered arrivals: later requests join while earlier ones decode
        results = [future.result() for future in futures]
        for future in aborted:
            future.result()
    longest: Dict[str, int] = {}
    for prompt, max_new in cases:
        longest[prompt] = max(longest.get(prompt, 0), max_new)
    references = {prompt: reference_greedy(model, tokenizer, prompt, n) for prompt, n in longest.items()}
    for (prompt, max_new), got in zip(cases, results):
        expected, trusted = references[prompt]
        trusted = min(trusted, max_new)
        assert len(got) == max_new
        assert got[:trusted] == expected[:trusted], f"prompt {prompt!r}"


def test_generate_wire_format_and_stream_agree(llama_server, models):
    body = {"inputs": "What is AI?", "parameters": {"max_new_tokens": 12, "ignore_eos": True}}
    with httpx.Client(timeout=120) as client:
        whole = client.post(f"{llama_server.url}/generate", json=body)
        events = stream_events(client, f"{llama_server.url}/generate_stream", body)
    assert whole.status_code == 200
    reply = whole.json()
    assert set(reply) == {"generated_text", "count_output_tokens", "finish_reason", "prompt_tokens"}
    assert reply["count_output_tokens"] == 12 and reply["finish_reason"] == "length"
    assert reply["prompt_tokens"] == len(AutoTokenizer.from_pretrained(models["llama"]).encode("What is AI?"))
    assert len(events) == 12
    for event in events[:-1]:
        assert set(event) == {"token", "generated_text", "finished", "finish_reason"}
        assert set(event["token"]) == {"id", "text", "logprob", "special"}
        assert event["generated_text"] is None and event["finished"] is False and event["finish_reason"] is None
        assert event["token"]["logprob"] <= 0
    last = events[-1]
    assert last["finished"] is True and last["finish_reason"] == "length"
    assert last["generated_text"] == "".join(event["token"]["text"] for event in events)
    assert reply["generated_text"] == [last["generated_text"]]


def test_openai_sdk_completions_and_chat_stream_and_not(llama_server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{llama_server.url}/v1", api_key="unused", timeout=120)
    assert [model.id for model in client.models.list().data] == ["tiny-llama"]

    completion = client.completions.create(model="tiny-llama", prompt="What is AI?", max_tokens=7, temperature=0)
    assert completion.object == "text_completion"
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 7 and completion.usage.prompt_tokens > 0
    chunks = list(
        client.completions.create(model="tiny-llama", prompt="What is AI?", max_tokens=7, temperature=0, stream=True)
    )
    assert "".join(chunk.choices[0].text for chunk in chunks) == completion.choices[0].text
    assert chunks[-1].choices[0].finish_reason == completion.choices[0].finish_reason

    messages = [{"role": "user", "content": "What is AI?"}]
    chat = client.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=9, temperature=0)
    assert chat.choices[0].message.role == "assistant"
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
    stream = client.chat.completions.create(
        model="tiny-llama",
        messages=messages,
        max_tokens=9,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == chat.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    # The chat template wraps the message: the prompt is longer than the message's own tokens.
    assert chat.usage.prompt_tokens > completion.usage.prompt_tokens


def test_requests_that_can_never_fit_or_are_invalid_get_a_clear_400(llama_server):
    openai = pytest.importorskip("openai")
    huge = {"inputs": "What is AI?", "parameters": {"max_new_tokens": 100_000}}
    response = httpx.post(f"{llama_server.url}/generate", json=huge, timeout=30)
    assert response.status_code == 400
    assert "max_new_tokens 100000" in response.json()["detail"]
    response = httpx.post(f"{llama_server.url}/generate", json={"inputs": "x", "parameters": {"top_p": 0}}, timeout=30)
    assert response.status_code == 400 and "top_p" in response.json()["detail"]
    response = httpx.post(f"{llama_server.url}/generate", json={"inputs": "x", "parameters": {"max_tokens": 3}})
    assert response.status_code == 422
    client = openai.OpenAI(base_url=f"{llama_server.url}/v1", api_key="unused", timeout=30)
    with pytest.raises(openai.UnprocessableEntityError, match="role"):  # OpenAISpec would pass it to the API
        client.chat.completions.create(model="tiny-llama", messages=[{"role": "string", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="exceeds"):
        client.completions.create(model="tiny-llama", prompt="What", max_tokens=100_000)


def test_seeded_sampling_is_reproducible_whatever_runs_beside_it(llama_server):
    body = {
        "inputs": "What is AI?",
        "parameters": {"do_sample": True, "temperature": 0.9, "top_k": 50, "seed": 1234, "max_new_tokens": 24},
    }
    url = f"{llama_server.url}/generate"
    alone = httpx.post(url, json=body, timeout=120).json()
    noisy = {"inputs": "Machines that think", "parameters": {"do_sample": True, "max_new_tokens": 40}}
    with ThreadPoolExecutor(4) as pool:
        neighbours = [pool.submit(httpx.post, url, json=noisy, timeout=120) for _ in range(3)]
        crowded = pool.submit(httpx.post, url, json=body, timeout=120).result().json()
        assert all(future.result().status_code == 200 for future in neighbours)
    other_seed = httpx.post(url, json={**body, "parameters": {**body["parameters"], "seed": 99}}, timeout=120).json()
    assert crowded["generated_text"] == alone["generated_text"]
    assert other_seed["generated_text"] != alone["generated_text"]


def metric(server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def live_kv_tokens(server) -> float:
    """KV slots held by running requests (the prefix cache keeps finished requests' tokens until needed)."""
    return metric(server, "litserve_llm_kv_tokens_used") - metric(server, "litserve_llm_kv_tokens_cached")


def test_small_kv_budget_all_requests_complete_and_slots_are_freed(models, tmp_path: Path):
    capacity = 160
    server = start_server(
        tmp_path,
        API,
        api_kwargs={"model_dir": models["llama"], "max_total_token_num": capacity},
        accelerator="cpu",
        timeout=120,
    )
    try:
        assert metric(server, "litserve_llm_kv_tokens_capacity") == capacity
        prompts = [PROMPTS[i % 5] for i in range(12)]  # short prompts: 12 x ~45 tokens >> 160 slots
        expected = {prompt: greedy_ids(server, prompt, 40) for prompt in set(prompts)}
        seen, stop = [], threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.append(metric(server, "litserve_llm_kv_tokens_used"))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with ThreadPoolExecutor(12) as pool:
                results = list(pool.map(lambda prompt: greedy_ids(server, prompt, 40), prompts))
        finally:
            stop.set()
            watcher.join()
        assert [result == expected[prompt] for prompt, result in zip(prompts, results)] == [True] * len(prompts)
        assert 0 < max(seen) <= capacity
        wait_for(lambda: live_kv_tokens(server) == 0, timeout=10, message="KV freed")
        assert metric(server, "litserve_llm_generation_tokens_total") >= 40 * (len(prompts) + len(expected))

        # A request whose prompt and output fill the whole capacity runs alone, to the end (it once waited forever).
        prompt_tokens = len(AutoTokenizer.from_pretrained(models["llama"]).encode(PROMPTS[2]))
        assert len(greedy_ids(server, PROMPTS[2], capacity - prompt_tokens)) == capacity - prompt_tokens

        # A client that hangs up mid-stream gives its slots back within moments.
        body = {"inputs": PROMPTS[0], "parameters": {"max_new_tokens": 100, "ignore_eos": True}}
        with httpx.Client(timeout=120) as client:
            with client.stream("POST", f"{server.url}/generate_stream", json=body) as response:
                lines = response.iter_lines()
                next(lines)
                assert live_kv_tokens(server) > 0
        wait_for(lambda: live_kv_tokens(server) == 0, timeout=5, message="slots freed")
        assert metric(server, "litserve_llm_requests_running") == 0
    finally:
        server.stop()


def test_requests_cut_off_at_shutdown_get_the_error_shape_of_their_path(models, tmp_path: Path):
    # The dispatcher answers these itself (shutdown_timeout passed): OpenAI paths still get OpenAI's shape,
    # so the SDK raises its typed error, and LightLLM's paths FastAPI's ``{"detail"}``.
    server = start_server(
        tmp_path,
        API,
        api_kwargs={"model_dir": models["llama"]},
        accelerator="cpu",
        timeout=120,
        shutdown_timeout=1,
    )
    long = 1900  # many seconds of decoding: still running when the grace period ends
    bodies = {
        "/v1/completions": {"model": "tiny-llama", "prompt": "a", "max_tokens": long, "ignore_eos": True},
        "/generate": {"inputs": "a", "parameters": {"max_new_tokens": long, "ignore_eos": True}},
    }
    try:
        with ThreadPoolExecutor(len(bodies)) as pool:
            replies = {
                path: pool.submit(httpx.post, f"{server.url}{path}", json=body, timeout=60)
                for path, body in bodies.items()
            }
            wait_for(lambda: metric(server, "litserve_llm_requests_running") == 2, timeout=30, message="both running")
            server.process.send_signal(signal.SIGTERM)
            openai_reply, lightllm_reply = replies["/v1/completions"].result(), replies["/generate"].result()
        assert openai_reply.status_code == 503
        assert "shutting down" in openai_reply.json()["error"]["message"]
        assert lightllm_reply.status_code == 503
        assert "shutting down" in lightllm_reply.json()["detail"]
        assert server.wait_exit(timeout=30) == 0
    finally:
        server.stop()
