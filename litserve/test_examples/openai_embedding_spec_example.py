"""Embedding LitAPIs for ``OpenAIEmbeddingSpec`` smoke tests, answering as LitServe's own ``test_examples`` do.

Each returns random 768-dimensional vectors; the variants exercise usage reporting and the errors a
mis-written embedding API gets (generators, a non-dict response, a missing ``embeddings`` key).
"""

from __future__ import annotations

from typing import Any, Iterator, List

import numpy as np

from litserve.api import LitAPI

EMBEDDING_SIZE = 768


class TestEmbedAPI(LitAPI):
    """One random vector per input: a string gets one, a list of n inputs gets n."""

    __test__ = False  # not a pytest test class

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> List[List[float]]:
        count = len(x) if isinstance(x, list) else 1
        return np.random.rand(count, EMBEDDING_SIZE).tolist()

    def encode_response(self, output: Any) -> dict:
        return {"embeddings": output}


class TestEmbedBatchedAPI(TestEmbedAPI):
    """Batched: ``predict`` gets one input list per request and returns one list of vectors per request."""

    def predict(self, batch: list) -> List[List[List[float]]]:
        return [np.random.rand(len(x), EMBEDDING_SIZE).tolist() for x in batch]


class TestEmbedAPIWithUsage(TestEmbedAPI):
    """Also reports usage: 10 prompt tokens, 10 in total."""

    def encode_response(self, output: Any) -> dict:
        return {"embeddings": output, "prompt_tokens": 10, "total_tokens": 10}


class TestEmbedAPIWithYieldPredict(TestEmbedAPI):
    """A mistake: ``predict`` yields (embeddings cannot stream), so the server refuses it."""

    def predict(self, x: Any) -> Iterator[float]:
        yield from np.random.rand(EMBEDDING_SIZE).tolist()


class TestEmbedAPIWithYieldEncodeResponse(TestEmbedAPI):
    """A mistake: ``encode_response`` yields (embeddings cannot stream), so the server refuses it."""

    def encode_response(self, output: Any) -> Iterator[dict]:
        yield {"embeddings": output}


class TestEmbedAPIWithNonDictOutput(TestEmbedAPI):
    """A mistake: ``encode_response`` returns the bare vectors instead of ``{"embeddings": ...}``."""

    def encode_response(self, output: Any) -> Any:
        return output


class TestEmbedAPIWithMissingEmbeddings(TestEmbedAPI):
    """A mistake: ``encode_response`` returns ``{"output": ...}`` without the ``embeddings`` key."""

    def encode_response(self, output: Any) -> dict:
        return {"output": output}
