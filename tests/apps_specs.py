"""LitAPIs that carry their spec themselves (``LitAPI(spec=...)``), for servers with several specs."""

from __future__ import annotations

import litserve as ls
from litserve.test_examples.openai_embedding_spec_example import TestEmbedAPI
from litserve.test_examples.openai_spec_example import TestAPI


class ChatAPI(TestAPI):
    def __init__(self):
        super().__init__(spec=ls.OpenAISpec())


class EmbedAPI(TestEmbedAPI):
    def __init__(self):
        super().__init__(spec=ls.OpenAIEmbeddingSpec())


class CrashingChatAPI(TestAPI):
    """A chat model whose worker dies (``os._exit``) when the last message says "crash"."""

    def predict(self, messages: list):
        if messages[-1].get("content") == "crash":
            import os

            os._exit(9)
        yield from super().predict(messages)


class PidThenStallChatAPI(TestAPI):
    """Streams its worker's pid, then stalls for a minute (the test kills the worker meanwhile)."""

    def predict(self, messages: list):
        import os
        import time

        yield str(os.getpid())
        time.sleep(60)
        yield " done"


GENERATED_OUTPUT = "This is a generated output"
TOY_EMBEDDING_SIZE = 8


class WordsChatAPI(TestAPI):
    """Streams the words of "This is a generated output" one item each."""

    def predict(self, messages: list):
        for i, word in enumerate(GENERATED_OUTPUT.split(" ")):
            yield word if i == 0 else " " + word


class UsageChatAPI(WordsChatAPI):
    """Also reports token usage: prompt = words in the messages, completion = 1 per item."""

    def predict(self, messages: list):
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        for i, piece in enumerate(super().predict(messages)):
            first = i == 0
            yield {
                "role": "assistant",
                "content": piece,
                "prompt_tokens": prompt_tokens if first else None,
                "completion_tokens": 1,
            }


class ToolCallChatAPI(TestAPI):
    """Answers with a call of the first tool offered, arguments {"city": "Paris"}."""

    def predict(self, messages: list, context: dict):
        tools = context.get("tools") or []
        if not tools:
            yield from super().predict(messages)
            return
        call = {"name": tools[0]["function"]["name"], "arguments": '{"city": "Paris"}'}
        yield {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
        }


def toy_embedding(text: str) -> list:
    """8 deterministic floats from a hash of ``text``."""
    import hashlib

    digest = hashlib.sha256(text.encode()).digest()
    return [byte / 255.0 for byte in digest[:TOY_EMBEDDING_SIZE]]


class ToyEmbedAPI(TestEmbedAPI):
    """A deterministic toy embedding (``toy_embedding``); usage counts words."""

    def predict(self, inputs: list) -> list:
        return [toy_embedding(text) for text in inputs]

    def decode_request(self, request, context: dict = None) -> list:
        inputs = [str(item) for item in request.ensure_list()]
        if context is not None:
            context["token_count"] = sum(len(text.split()) for text in inputs)
        return inputs

    def encode_response(self, vectors: list, context: dict = None) -> dict:
        tokens = context.get("token_count", 0) if context else 0
        return {"embeddings": vectors, "prompt_tokens": tokens, "total_tokens": tokens}


class FailsMidStreamChatAPI(TestAPI):
    """Yields one piece, then raises: the reply fails after it started."""

    def predict(self, messages: list):
        yield "partial"
        raise RuntimeError("the model broke")
