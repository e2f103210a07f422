"""LLMAPI on a CUDA device: greedy tokens over HTTP equal transformers' own on the same GPU. Skipped without CUDA."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.timeout(900),
]


def test_greedy_on_cuda_equals_transformers(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from litserve.llm.testing import build_tiny_model
    from tests.conftest import start_server
    from tests.e2e.test_llm import PROMPTS, greedy_ids, reference_greedy

    model_dir = build_tiny_model(str(tmp_path / "tiny-llama"), arch="llama", hidden_size=512, num_layers=4)
    kwargs = {"model_dir": model_dir, "dtype": "float32", "prefill_chunk_tokens": 16}
    server = start_server(tmp_path, "litserve.llm:LLMAPI", api_kwargs=kwargs, accelerator="cuda", timeout=300)
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda prompt: greedy_ids(server, prompt, 24), PROMPTS * 2))
    finally:
        server.stop()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to("cuda").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for prompt, got in zip(PROMPTS * 2, results):
        expected, trusted = reference_greedy(model, tokenizer, prompt, 24, device="cuda")
        assert got[:trusted] == expected[:trusted], f"prompt {prompt!r}"
