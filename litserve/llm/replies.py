"""What each LLM route sends, built token by token from the engine's ``TokenEvent``s.

A reply object lives as long as its request; ``on_token`` returns the bytes to send now (``b""`` when
nothing is due yet, e.g. a non-streaming reply before its last token).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import orjson

from litserve.llm.requests import ChatRequest, CompletionRequest, GenerateRequest
from litserve.llm.sampling import SamplingParams

if TYPE_CHECKING:
    from litserve.llm.engine import TokenEvent

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_DONE = b"data: [DONE]\n\n"


def _sse(payload: Dict[str, Any], separator: bytes = b" ") -> bytes:
    return b"data:" + separator + orjson.dumps(payload) + b"\n\n"


class Reply:
    """The reply to one request; subclasses shape it for their route."""

    headers: Any = None  # of the first bytes sent (None: application/json)

    def __init__(self, request: Any, model: str, submitted: float = 0.0) -> None:
        self.request = request
        self.model = request.model if getattr(request, "model", None) else model
        self.submitted = submitted  # when the API process handed it over (time.monotonic())
        self.first_token_at: Optional[float] = None
        self.text: List[str] = []
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.output_tokens = 0
        self.finish_reason: Optional[str] = None

    def prompt_ids(self, engine: Any) -> List[int]:
        return self.request.prompt_ids(engine)

    def sampling_params(self) -> SamplingParams:
        return self.request.sampling_params()

    def on_token(self, event: TokenEvent) -> bytes:
        self.text.append(event.text)
        self.prompt_tokens = event.prompt_tokens
        self.cached_tokens = event.cached_tokens
        self.output_tokens = event.output_tokens
        if event.finished:
            self.finish_reason = event.finish_reason or "stop"
        return self.encode(event)

    def encode(self, event: TokenEvent) -> bytes:
        raise NotImplementedError

    def usage(self) -> Dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.prompt_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }


class _GenerateRequestReply(Reply):
    def prompt_ids(self, engine: Any) -> List[int]:
        return engine.encode_prompt(self.request.inputs)


class GenerateReply(_GenerateRequestReply):
    """LightLLM's ``/generate``: one JSON body when the request finishes."""

    def encode(self, event: TokenEvent) -> bytes:
        if not event.finished:
            return b""
        return orjson.dumps(
            {
                "generated_text": ["".join(self.text)],
                "count_output_tokens": self.output_tokens,
                "finish_reason": self.finish_reason,
                "prompt_tokens": self.prompt_tokens,
            }
        )


class GenerateStreamReply(_GenerateRequestReply):
    """LightLLM's ``/generate_stream``: one ``data:{json}`` event per token; the last has the full text."""

    headers = SSE_HEADERS

    def encode(self, event: TokenEvent) -> bytes:
        return _sse(
            {
                "token": {
                    "id": event.token_id,
                    "text": event.text,
                    "logprob": event.logprob,
                    "special": event.special,
                },
                "generated_text": "".join(self.text) if event.finished else None,
                "finished": event.finished,
                "finish_reason": self.finish_reason,
            },
            separator=b"",
        )


class _OpenAIReply(Reply):
    object_name = ""
    chunk_name = ""

    def __init__(self, request: Any, model: str, submitted: float = 0.0) -> None:
        super().__init__(request, model, submitted)
        self.id = f"{self.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.streaming = bool(request.stream)
        if self.streaming:
            self.headers = SSE_HEADERS

    id_prefix = "cmpl"

    def encode(self, event: TokenEvent) -> bytes:
        if not self.streaming:
            return self.whole_body() if event.finished else b""
        parts = []
        if event.text or self.needs_opening():
            parts.append(self.chunk(event.text, None))
        if event.finished:
            parts.append(self.chunk("", self.finish_reason, closing=True))
            if self.request.include_usage:
                parts.append(self.usage_chunk())
            parts.append(_DONE)
        return b"".join(parts)

    def needs_opening(self) -> bool:
        return False

    def envelope(self, choices: list, obj: str) -> Dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices}

    def usage_chunk(self) -> bytes:
        payload = self.envelope([], self.chunk_name)
        payload["usage"] = self.usage()
        return _sse(payload)

    def whole_body(self) -> bytes:
        payload = self.envelope([self.whole_choice()], self.object_name)
        payload["usage"] = self.usage()
        return orjson.dumps(payload)

    def chunk(self, text: str, finish_reason: Optional[str], closing: bool = False) -> bytes:
        raise NotImplementedError

    def whole_choice(self) -> Dict[str, Any]:
        raise NotImplementedError


class CompletionReply(_OpenAIReply):
    """OpenAI ``/v1/completions``: ``text_completion`` objects."""

    object_name = chunk_name = "text_completion"

    def chunk(self, text: str, finish_reason: Optional[str], closing: bool = False) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
        return _sse(self.envelope([choice], self.chunk_name))

    def whole_choice(self) -> Dict[str, Any]:
        return {"index": 0, "text": "".join(self.text), "logprobs": None, "finish_reason": self.finish_reason}


class ChatReply(_OpenAIReply):
    """OpenAI ``/v1/chat/completions``: ``chat.completion`` and ``chat.completion.chunk`` objects."""

    object_name = "chat.completion"
    chunk_name = "chat.completion.chunk"
    id_prefix = "chatcmpl"

    def __init__(self, request: Any, model: str, submitted: float = 0.0) -> None:
        super().__init__(request, model, submitted)
        self.role_sent = False

    def needs_opening(self) -> bool:
        return not self.role_sent

    def chunk(self, text: str, finish_reason: Optional[str], closing: bool = False) -> bytes:
        delta: Dict[str, Any] = {}
        if not self.role_sent:
            delta["role"] = "assistant"
            self.role_sent = True
        if text or not closing:
            delta["content"] = text
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse(self.envelope([choice], self.chunk_name))

    def whole_choice(self) -> Dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.text)}
        return {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}


GENERATE_PATH = "/generate"
GENERATE_STREAM_PATH = "/generate_stream"
COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"

# path -> (request model, reply class)
ROUTES = {
    GENERATE_PATH: (GenerateRequest, GenerateReply),
    GENERATE_STREAM_PATH: (GenerateRequest, GenerateStreamReply),
    COMPLETIONS_PATH: (CompletionRequest, CompletionReply),
    CHAT_PATH: (ChatRequest, ChatReply),
}
