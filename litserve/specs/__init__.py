"""API specs layered over a LitAPI: OpenAI chat completions and embeddings."""

from litserve.specs.base import LitSpec
from litserve.specs.openai import OpenAISpec
from litserve.specs.openai_embedding import OpenAIEmbeddingSpec
from litserve.specs.openai_embedding_types import EmbeddingRequest, EmbeddingResponse
from litserve.specs.openai_types import ChatCompletionChunk, ChatCompletionRequest, ChatCompletionResponse

__all__ = [
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "LitSpec",
    "OpenAIEmbeddingSpec",
    "OpenAISpec",
]
