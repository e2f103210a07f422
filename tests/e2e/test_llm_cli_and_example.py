"""``litserve llm MODEL_DIR`` and ``examples/llm`` start as a user would start them and answer."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port, launch

pytest.importorskip("transformers")

from litserve.llm.testing import build_tiny_model  # noqa: E402

pytestmark = pytest.mark.timeout(600)  # the shared 2-core machine can be slow; this only catches hangs


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama")


def test_litserve_llm_command_serves_with_the_given_budget(model_dir, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "litserve.cli", "llm", model_dir, "--port", str(port), "--host", "127.0.0.1"]
    flags = ["--max-total-token-num", "300", "--accelerator", "cpu", "--no-prefix-caching", "--num-threads", "1"]
    server = launch([*command, *flags], tmp_path, port)
    try:
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
    finally:
        server.stop()


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
