"""Chat APIs for OpenAISpec smoke tests: ``TestAPI`` answers "This is a generated output"."""

from __future__ import annotations

from typing import Iterator

from litserve.api import LitAPI
from litserve.specs.openai_types import ChatMessage

GENERATED_OUTPUT = "This is a generated output"


class TestAPI(LitAPI):
    """Streams the words of "This is a generated output", whatever the messages say."""

    __test__ = False  # not a pytest test class

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, messages: list) -> Iterator[str]:
        words = GENERATED_OUTPUT.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word


class TestAPIWithUsage(TestAPI):
    """Also reports token usage: prompt = words in the messages, completion = 1 per item."""

    def predict(self, messages: list) -> Iterator[dict]:
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        for i, piece in enumerate(super().predict(messages)):
            yield {
                "role": "assistant",
                "content": piece,
                "prompt_tokens": prompt_tokens if i == 0 else None,
                "completion_tokens": 1,
            }


class TestAPIWithToolCalls(TestAPI):
    """Answers with a call of the first tool offered, arguments {"city": "Paris"}."""

    def predict(self, messages: list, context: dict) -> Iterator[ChatMessage]:
        tools = context.get("tools") or []
        if not tools:
            yield from super().predict(messages)
            return
        name = tools[0]["function"]["name"]
        yield ChatMessage(
            role="assistant",
            content=None,
            tool_calls=[
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": '{"city": "Paris"}'}}
            ],
        )
