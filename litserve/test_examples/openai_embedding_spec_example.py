"""Embedding API for OpenAIEmbeddingSpec smoke tests."""

from __future__ import annotations

import hashlib
from typing import List

from litserve.api import LitAPI

EMBEDDING_SIZE = 8


class TestEmbedAPI(LitAPI):
    """A deterministic toy embedding: 8 floats from a hash of each input; usage counts words."""

    __test__ = False  # not a pytest test class

    def setup(self, device: str) -> None:
        self.model = _toy_embedding

    def predict(self, inputs: List[str]) -> List[List[float]]:
        return [self.model(text) for text in inputs]

    def encode_response(self, vectors: List[List[float]], context: dict = None) -> dict:
        tokens = context.get("token_count", 0) if context else 0
        return {"embeddings": vectors, "prompt_tokens": tokens, "total_tokens": tokens}

    def decode_request(self, request, context: dict = None) -> List[str]:
        inputs = [str(item) for item in request.ensure_list()]
        if context is not None:
            context["token_count"] = sum(len(text.split()) for text in inputs)
        return inputs


def _toy_embedding(text: str) -> List[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [byte / 255.0 for byte in digest[:EMBEDDING_SIZE]]
