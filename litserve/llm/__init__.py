"""LLM serving: a continuous-batching engine over token-level KV memory, served by ``LLMAPI``.

Needs the ``litserve[llm]`` extra (transformers, tokenizers, safetensors).
"""

from typing import Any

__all__ = ["LLMAPI"]


def __getattr__(name: str) -> Any:
    # Imported on first use so ``litserve.llm.testing`` and friends stay importable without loading torch here.
    if name == "LLMAPI":
        from litserve.llm.api import LLMAPI

        return LLMAPI
    raise AttributeError(f"module 'litserve.llm' has no attribute {name!r}")
