"""API specs layered over a LitAPI: OpenAI chat completions and embeddings."""

from litserve.specs.base import LitSpec
from litserve.specs.openai import OpenAISpec
from litserve.specs.openai_embedding import OpenAIEmbeddingSpec

__all__ = ["LitSpec", "OpenAISpec", "OpenAIEmbeddingSpec"]
