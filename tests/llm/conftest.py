"""Seeded tiny model directories shared by the engine tests (built once per session, offline)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from litserve.llm.testing import build_tiny_model  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    # The models are tiny: one thread is as fast, and far faster than two on a CPU other jobs share.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> str:
    # Two KV heads for four query heads: grouped-query attention is exercised too.
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-llama")), arch="llama", num_kv_heads=2, seed=1)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-gpt2")), arch="gpt2", seed=2)


@pytest.fixture(scope="session")
def mistral_window_dir(tmp_path_factory) -> str:
    # A sliding window shorter than most sequences, so the window really cuts.
    path = str(tmp_path_factory.mktemp("tiny-mistral"))
    return build_tiny_model(path, arch="mistral", num_kv_heads=2, sliding_window=12, seed=3)


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-qwen2")), arch="qwen2", num_kv_heads=1, seed=4)
