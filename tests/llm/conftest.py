"""Seeded tiny model directories shared by the engine tests (built once per session, offline)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from litserve.llm.testing import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> str:
    # Two KV heads for four query heads: grouped-query attention is exercised too.
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-llama")), arch="llama", num_kv_heads=2, seed=1)


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("tiny-gpt2")), arch="gpt2", seed=2)
