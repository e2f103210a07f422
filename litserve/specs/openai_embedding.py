"""OpenAIEmbeddingSpec: ``POST /v1/embeddings`` as the official openai SDK expects it.

``decode_request`` gets the validated ``EmbeddingRequest`` (default: its inputs as a list). With
``max_batch_size > 1`` the default ``batch`` joins the inputs of concurrent requests into one flat list for
``predict`` and ``unbatch`` hands each request its own vectors back. ``encode_response`` returns
``{"embeddings": [...], "prompt_tokens": n, "total_tokens": n}`` (numpy arrays and torch tensors accepted) or
just the vectors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, List, Optional

from litserve import codec
from litserve.specs.base import LitSpec
from litserve.specs.openai import add_models_routes, openai_error_body
from litserve.specs.openai_embedding_types import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsageInfo
from litserve.workers.protocol import JsonProtocol
from litserve.workers.selection import make_loop

if TYPE_CHECKING:
    from fastapi import FastAPI

    from litserve.api import LitAPI
    from litserve.routes import Runtime
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner
    from litserve.workers.skeleton import WorkerLoop

UsageInfo = EmbeddingUsageInfo  # LitServe's name here

__all__ = ["OpenAIEmbeddingSpec", "Embedding", "EmbeddingRequest", "EmbeddingResponse", "UsageInfo"]


class EmbeddingProtocol(JsonProtocol):
    """Parses ``EmbeddingRequest`` bodies and writes OpenAI ``list`` replies."""

    def __init__(self, spec: OpenAIEmbeddingSpec) -> None:
        super().__init__(EmbeddingRequest)
        self.spec = spec

    def error_body(self, status: int, detail: Any) -> bytes:
        return openai_error_body(status, detail)

    def prepare_context(self, payload: EmbeddingRequest, context: dict) -> None:
        context.update(payload.model_dump(exclude={"input"}))
        context["input_count"] = len(payload.ensure_list())

    def reply(self, output: Any, context: dict) -> codec.Reply:
        if isinstance(output, dict):
            vectors = output.get("embeddings")
            prompt_tokens = int(output.get("prompt_tokens") or 0)
            total_tokens = output.get("total_tokens")
        else:
            vectors, prompt_tokens, total_tokens = output, 0, None
        if vectors is None:
            raise ValueError("encode_response must return {'embeddings': [...]} or the vectors themselves")
        vectors = _as_rows(vectors)
        if len(vectors) != context["input_count"]:
            raise ValueError(f"got {len(vectors)} embeddings for {context['input_count']} inputs")
        dimensions = context.get("dimensions")
        if dimensions:
            vectors = [_shorten(vector, dimensions) for vector in vectors]
        response = EmbeddingResponse.from_vectors(
            vectors,
            model=context.get("model") or self.spec.model_name,
            encoding_format=context.get("encoding_format") or "float",
            prompt_tokens=prompt_tokens,
            total_tokens=int(total_tokens) if total_tokens is not None else None,
        )
        return 200, None, response.model_dump_json().encode()


def _as_rows(vectors: Any) -> List[List[float]]:
    if hasattr(vectors, "tolist"):
        vectors = vectors.tolist()
    rows = [row.tolist() if hasattr(row, "tolist") else list(row) for row in vectors]
    if rows and not isinstance(rows[0], list):
        raise ValueError("embeddings must be a list of vectors, one per input")
    return rows


def _shorten(vector: List[float], dimensions: int) -> List[float]:
    """Keep the first ``dimensions`` values and re-normalize, as OpenAI does for shortened embeddings."""
    if dimensions >= len(vector):
        return vector
    head = vector[:dimensions]
    norm = math.sqrt(sum(v * v for v in head))
    return [v / norm for v in head] if norm > 0 else head


class OpenAIEmbeddingSpec(LitSpec):
    """Serve a LitAPI as OpenAI's Embeddings API at ``/v1/embeddings``.

    Example::

        class EmbedAPI(ls.LitAPI):
            def setup(self, device):
                self.model = load_encoder(device)

            def predict(self, texts):
                return self.model.encode(texts)

            def encode_response(self, vectors):
                return {"embeddings": vectors, "prompt_tokens": 0, "total_tokens": 0}

        ls.LitServer(EmbedAPI(), spec=ls.OpenAIEmbeddingSpec(), max_batch_size=32).run(port=8000)
    """

    api_path = "/v1/embeddings"
    request_model = EmbeddingRequest
    may_stream = False

    def __init__(self, model_name: Optional[str] = None) -> None:
        super().__init__()
        self._model_name = model_name
        self._batch_sizes: List[int] = []

    @property
    def model_name(self) -> str:
        return self._model_name or super().model_name

    def setup(self, lit_api: LitAPI) -> None:
        """Refuse generator hooks at start-up: an embedding is one answer, never a stream."""
        from litserve.api import is_generator_hook

        for hook in ("predict", "encode_response"):
            if is_generator_hook(getattr(lit_api, hook)):
                raise ValueError(
                    f"{type(lit_api).__name__}.{hook} yields, but OpenAIEmbeddingSpec does not stream: "
                    "embeddings are one answer per request. Use return instead of yield."
                )
        super().setup(lit_api)

    def decode_request(self, request: EmbeddingRequest, context: Optional[dict] = None) -> List[Any]:
        """Default: the inputs as a list (one string or token list per embedding)."""
        return request.ensure_list()

    def encode_response(self, output: Any, context: Optional[dict] = None) -> Any:
        return {"embeddings": output}

    def batch(self, inputs: list) -> list:
        """Join the input lists of a batch of requests into one flat list."""
        self._batch_sizes = [len(x) if isinstance(x, list) else 1 for x in inputs]
        flat: list = []
        for x in inputs:
            flat.extend(x if isinstance(x, list) else [x])
        return flat

    def unbatch(self, output: Any) -> list:
        """Split the vectors of a batch back into one slice per request."""
        rows = output.tolist() if hasattr(output, "tolist") else list(output)
        slices, start = [], 0
        for size in self._batch_sizes:
            slices.append(rows[start : start + size])
            start += size
        if start != len(rows):
            raise ValueError(f"predict returned {len(rows)} embeddings for {start} inputs in the batch")
        return slices

    def error_body(self, status: int, detail: Any) -> bytes:
        return openai_error_body(status, detail)

    def make_loop(self, runner: HookRunner, channel: WorkerChannel) -> WorkerLoop:
        return make_loop(runner, channel, EmbeddingProtocol(self))

    def add_routes(self, app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
        add_models_routes(app, runtime, lit_apis)
