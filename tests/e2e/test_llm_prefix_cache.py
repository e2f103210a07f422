"""Automatic prefix caching seen from a client: ``usage.prompt_tokens_details.cached_tokens`` and /metrics."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import start_server

pytest.importorskip("transformers")
openai = pytest.importorskip("openai")

from litserve.llm.testing import build_tiny_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)  # the shared 2-core machine can be slow; this only catches hangs
SYSTEM = "You are a helpful assistant who answers in short sentences and never repeats the question. " * 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model_dir = build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama")
    running = start_server(
        tmp_path_factory.mktemp("server"), "litserve.llm:LLMAPI", api_kwargs={"model_dir": model_dir}, accelerator="cpu"
    )
    yield running
    running.stop()


def metric(server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_chats_sharing_a_system_prompt_report_the_cached_tokens(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    queried = metric(server, "litserve_llm_prefix_cache_queries_total")
    found = metric(server, "litserve_llm_prefix_cache_hits_total")
    replies = []
    for question in ("What is AI?", "What is a KV cache?"):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        replies.append(
            client.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=4, temperature=0)
        )
    first, second = (reply.usage for reply in replies)
    assert first.prompt_tokens_details.cached_tokens == 0
    assert 40 < second.prompt_tokens_details.cached_tokens < second.prompt_tokens
    looked_up = metric(server, "litserve_llm_prefix_cache_queries_total") - queried
    assert looked_up == first.prompt_tokens + second.prompt_tokens
    assert metric(server, "litserve_llm_prefix_cache_hits_total") - found == second.prompt_tokens_details.cached_tokens
    assert metric(server, "litserve_llm_kv_tokens_cached") > 0


def test_a_repeated_streamed_completion_is_served_from_the_cache_with_the_same_text(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused")

    def complete():
        stream = client.completions.create(
            model="tiny-llama",
            prompt=SYSTEM + "Tell me more.",
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        chunks = list(stream)
        return "".join(chunk.choices[0].text for chunk in chunks if chunk.choices), chunks[-1].usage

    text, usage = complete()
    again, usage_again = complete()
    assert again == text and usage_again.completion_tokens == 12
    assert usage_again.prompt_tokens_details.cached_tokens == usage_again.prompt_tokens - 1  # all but the last
    assert usage.prompt_tokens_details.cached_tokens < usage_again.prompt_tokens_details.cached_tokens
