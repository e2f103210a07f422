"""Chat LitAPIs for ``OpenAISpec`` smoke tests, answering as LitServe's own ``test_examples`` do."""

from __future__ import annotations

import time
from typing import Any, Iterator, List

from litserve.api import LitAPI
from litserve.specs.openai import ChatMessage

GENERATED_OUTPUT = "This is a generated output"
_BATCH_REPLY = "Hi! It's nice to meet you. Is there something I can help you with or would you like to chat?"
_USAGE = {"prompt_tokens": 25, "completion_tokens": 10, "total_tokens": 35}


class TestAPI(LitAPI):
    """Answers "This is a generated output" in one piece, whatever the messages say."""

    __test__ = False  # not a pytest test class

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[str]:
        yield GENERATED_OUTPUT


class TestAPIWithCustomEncode(TestAPI):
    """``encode_response`` replaces the output: "This is a custom encoded output"."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        yield ChatMessage(role="assistant", content="This is a custom encoded output")


class TestAPIWithToolCalls(TestAPI):
    """Answers with empty content and one call of ``function_1`` with ``{"arg_1": "arg_1_value"}``."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        call = {"name": "function_1", "arguments": '{"arg_1": "arg_1_value"}'}
        yield ChatMessage(
            role="assistant", content="", tool_calls=[{"id": "call_1", "type": "function", "function": call}]
        )


class TestAPIWithStructuredOutput(TestAPI):
    """Answers a fixed JSON document, as a model following a ``response_format`` schema would."""

    def encode_response(self, output: Any) -> Iterator[ChatMessage]:
        content = '{"name": "Science Fair", "date": "Friday", "participants": ["Alice", "Bob"]}'
        yield ChatMessage(role="assistant", content=content)


class OpenAIBatchContext(LitAPI):
    """Batched streaming: each request gets the same 20 words (10 ms apart); hooks share one context per request.

    ``predict`` sets ``temperature`` in every request's context and ``encode_response`` checks it arrived.
    """

    def setup(self, device: str) -> None:
        self.model = None

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, inputs: list, context: List[dict]) -> Iterator[List[str]]:
        assert isinstance(context, list), "a batched predict gets one context per request"
        for ctx in context:
            ctx["temperature"] = 1.0
        for word in _BATCH_REPLY.split(" "):
            time.sleep(0.01)  # a model takes a while per token
            yield [word + " "] * len(inputs)

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output_stream: Iterator[List[str]], context: List[dict]) -> Iterator[List[dict]]:
        for words in output_stream:
            yield [{"role": "assistant", "content": word} for word in words]
        for ctx in context:
            assert ctx["temperature"] == 1.0, f"context {ctx} lost the temperature that predict set"


class OpenAIWithUsage(LitAPI):
    """Answers "10 + 6 is equal to 16." in one item that also reports token usage (25 + 10 = 35)."""

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[dict]:
        yield {"role": "assistant", "content": "10 + 6 is equal to 16.", **_USAGE}


class OpenAIWithUsageEncodeResponse(LitAPI):
    """Streams "10 + 6 is equal to 16." token by token, then an empty item carrying the usage."""

    def setup(self, device: str) -> None:
        self.model = None

    def predict(self, x: Any) -> Iterator[str]:
        yield from ["10", " +", " ", "6", " is", " equal", " to", " ", "16", "."]

    def encode_response(self, output: Iterator[str]) -> Iterator[dict]:
        for token in output:
            yield {"role": "assistant", "content": token}
        yield {"role": "assistant", "content": "", **_USAGE}


class OpenAIBatchingWithUsage(OpenAIWithUsage):
    """The batched form of ``OpenAIWithUsage``: one answer per request, then one usage item per request."""

    def batch(self, inputs: list) -> list:
        return inputs

    def predict(self, x: list) -> Iterator[List[str]]:
        yield ["10 + 6 is equal to 16."] * len(x)

    def unbatch(self, output: Any) -> Any:
        return output

    def encode_response(self, output_stream_batch: Iterator[List[str]], context: List[dict]) -> Iterator[List[dict]]:
        for outputs in output_stream_batch:
            yield [{"role": "assistant", "content": out} for out in outputs]
        yield [{"role": "assistant", "content": "", **_USAGE} for _ in context]
