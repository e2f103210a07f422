"""LLM serving: a continuous-batching engine over token-level KV memory (``litserve.llm.engine``).

Needs the ``litserve[llm]`` extra (transformers, tokenizers, safetensors).
"""
