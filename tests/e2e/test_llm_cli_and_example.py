"""``litserve llm MODEL_DIR`` and ``examples/llm`` start as a user would start them, answer, and warn of nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port, launch, warnings_in

pytest.importorskip("transformers")

from litserve.llm.testing import build_tiny_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)  # the shared 2-core machine can be slow; this only catches hangs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama")


@pytest.fixture(scope="module")
def llm_command(model_dir, tmp_path_factory):
    """``litserve llm MODEL_DIR`` with a 300-token KV budget, as a user types it."""
    port = free_port()
    command = [sys.executable, "-m", "litserve.cli", "llm", model_dir, "--port", str(port), "--host", "127.0.0.1"]
    flags = ["--max-total-token-num", "300", "--accelerator", "cpu", "--no-prefix-caching", "--num-threads", "1"]
    server = launch([*command, *flags], tmp_path_factory.mktemp("llm-command"), port)
    yield server
    server.stop()


def test_litserve_llm_command_serves_with_the_given_budget(llm_command):
    server = llm_command
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "litserve_llm_kv_tokens_capacity 300.0" in metrics
    body = {"inputs": "hi there, " * 10, "parameters": {"max_new_tokens": 3}}
    for _ in range(2):  # the same prompt twice: nothing is cached with --no-prefix-caching
        reply = httpx.post(f"{server.url}/generate", json=body)
        assert reply.status_code == 200 and reply.json()["count_output_tokens"] <= 3
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "litserve_llm_prefix_cache_hits_total 0.0" in metrics
    assert "litserve_llm_prefix_cache_queries_total 0.0" not in metrics
    too_big = httpx.post(f"{server.url}/generate", json={"inputs": "hi", "parameters": {"max_new_tokens": 400}})
    assert too_big.status_code == 400 and "300" in too_big.json()["detail"]
    assert warnings_in(server.output()) == [], server.output()


def test_a_model_the_server_does_not_serve_gets_404_model_not_found(llm_command):
    import openai

    client = openai.OpenAI(base_url=f"{llm_command.url}/v1", api_key="x", max_retries=0, timeout=60)
    served = client.models.list().data[0].id
    assert served == "tiny-llama"
    messages = [{"role": "user", "content": "Hi"}]
    calls = {
        "chat": lambda model, **kw: client.chat.completions.create(model=model, messages=messages, max_tokens=2, **kw),
        "completions": lambda model, **kw: client.completions.create(model=model, prompt="Hi", max_tokens=2, **kw),
    }
    for name, call in calls.items():
        for stream in (False, True):
            with pytest.raises(openai.NotFoundError) as raised:
                call("gpt-4o", stream=stream)
            error = raised.value
            assert error.status_code == 404 and error.code == "model_not_found", (name, stream)
            assert error.type == "invalid_request_error" and "gpt-4o" in error.message and served in error.message
        assert call(served).usage.completion_tokens <= 2, name
    # Without a model (curl, LightLLM-style clients) the served one answers.
    untagged = httpx.post(f"{llm_command.url}/v1/completions", json={"prompt": "Hi", "max_tokens": 2}, timeout=60)
    assert untagged.status_code == 200 and untagged.json()["model"] == served


def test_llm_example_and_its_client(model_dir, serve_script, tmp_path):
    server = serve_script(REPO_ROOT / "examples" / "llm" / "server.py", env={"MODEL_DIR": model_dir})
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "llm" / "client.py")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PORT": str(server.port)},
        check=True,
    )
    assert "generated_text" in result.stdout and "completion_tokens" in result.stdout
    assert warnings_in(server.output()) == [], server.output()
