"""The OpenAI wire format written by the worker: error bodies, server-sent events, and the chat completion
built from the items a chat API yields."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import orjson
from pydantic import BaseModel

from litserve.specs.openai_types import (
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    ToolCall,
    make_chat_completion_id,
)
from litserve.transport.worker_channel import WorkItem

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_DONE_EVENT = b"data: [DONE]\n\n"


def sse_error_event(error_body: bytes) -> bytes:
    """An error inside an event stream: the SDK raises it as an ``APIError``."""
    return b"data: " + error_body + b"\n\n"


def openai_error_body(status: int, detail: Any) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``, so the openai SDK raises its typed exceptions."""
    param = None
    if isinstance(detail, list):  # pydantic validation errors
        messages = []
        for error in detail:
            location = ".".join(str(part) for part in error.get("loc", []) if part != "body")
            messages.append(f"{location}: {error.get('msg')}" if location else str(error.get("msg")))
            param = param or location or None
        message = "Invalid request: " + "; ".join(messages)
    else:
        message = str(detail)
    return ErrorResponse.from_status(status, message, param=param).model_dump_json().encode()


def _sse(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class _ChoiceState:
    __slots__ = ("content", "tool_calls", "finish_reason", "role_sent", "items", "completion_tokens", "done")

    def __init__(self) -> None:
        self.content: List[str] = []
        self.tool_calls: List[dict] = []
        self.finish_reason: Optional[str] = None
        self.role_sent = False
        self.items = 0
        self.completion_tokens: Optional[int] = None
        self.done = False


class ChatCompletionReply:
    """Builds the reply to one chat request from the items its choices produce."""

    def __init__(self, item: WorkItem, request: ChatCompletionRequest, model: str) -> None:
        self.item = item
        self.request = request
        self.streaming = request.stream
        self.id = make_chat_completion_id()
        self.created = int(time.time())
        self.model = request.model or model
        self.choices = [_ChoiceState() for _ in range(request.n)]
        self.prompt_tokens: Optional[int] = None
        self.started = False  # a streamed reply has sent its first event
        self.finished = False

    def chunk(self, choices: list, usage: Optional[dict] = None) -> bytes:
        payload = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            payload["usage"] = usage
        return _sse(payload)

    def add(self, choice_index: int, item: Any) -> Optional[bytes]:
        """Record one item; returns the event to send now when streaming."""
        recorded = self.record(choice_index, item)
        if recorded is None or not self.streaming:
            return None
        content, tool_calls = recorded
        state = self.choices[choice_index]
        delta: Dict[str, Any] = {}
        if not state.role_sent:
            delta["role"] = "assistant"
            state.role_sent = True
        if content or (content is not None and tool_calls):
            delta["content"] = content  # "" beside tool calls stays "", as OpenAI and LitServe send it
        if tool_calls:
            first = len(state.tool_calls)
            delta["tool_calls"] = [{"index": first + i, **call} for i, call in enumerate(tool_calls)]
            state.tool_calls.extend(tool_calls)
        if not delta:
            return None
        return self.chunk([{"index": choice_index, "delta": delta, "finish_reason": None}])

    #: Keep content and tool calls while streaming too (replies that repeat them at the end).
    keeps_items = False

    def record(self, choice_index: int, item: Any) -> Optional[tuple]:
        """Count one item's usage and keep what it says; returns its (content, tool_calls), None for no item."""
        message = normalize_item(item)
        if message is None:
            return None
        state = self.choices[choice_index]
        state.items += 1
        if message.get("prompt_tokens") is not None:
            self.prompt_tokens = max(self.prompt_tokens or 0, int(message["prompt_tokens"]))
        if message.get("completion_tokens") is not None:
            state.completion_tokens = (state.completion_tokens or 0) + int(message["completion_tokens"])
        if message.get("finish_reason"):
            state.finish_reason = message["finish_reason"]
        content = message.get("content")
        tool_calls = message.get("tool_calls") or []
        if not self.streaming or self.keeps_items:
            if content is not None:
                state.content.append(content)
            state.tool_calls.extend(tool_calls)
        return content, tool_calls

    def finish_reason(self, state: _ChoiceState) -> str:
        if state.finish_reason:
            return state.finish_reason
        if state.tool_calls:
            return "tool_calls"
        limit = self.request.max_new_tokens  # 0 or None: no limit
        if limit and state.completion_tokens is not None and state.completion_tokens >= limit:
            return "length"
        return "stop"

    def usage(self) -> dict:
        completion = sum(s.completion_tokens if s.completion_tokens is not None else s.items for s in self.choices)
        prompt = self.prompt_tokens or 0
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def final_stream_events(self) -> bytes:
        events = []
        for index, state in enumerate(self.choices):
            delta = {} if state.role_sent else {"role": "assistant", "content": ""}
            events.append(self.chunk([{"index": index, "delta": delta, "finish_reason": self.finish_reason(state)}]))
        if self.request.include_usage:
            events.append(self.chunk([], usage=self.usage()))
        events.append(_DONE_EVENT)
        return b"".join(events)

    def completion_body(self) -> bytes:
        choices = []
        for index, state in enumerate(self.choices):
            message: Dict[str, Any] = {"role": "assistant", "content": "".join(state.content)}
            if state.tool_calls:
                message["tool_calls"] = state.tool_calls
                if not state.content:
                    message["content"] = None
            choices.append({"index": index, "message": message, "finish_reason": self.finish_reason(state)})
        return orjson.dumps(
            {
                "id": self.id,
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                "usage": self.usage(),
            }
        )


def normalize_item(item: Any) -> Optional[dict]:
    """An item from ``encode_response`` as a dict with ``content``, ``tool_calls`` and usage keys."""
    if item is None:
        return None
    if isinstance(item, str):
        return {"content": item}
    if isinstance(item, BaseModel):
        item = item.model_dump(exclude_none=True)
    if not isinstance(item, dict):
        raise TypeError(
            f"chat items must be str, dict or ChatMessage, got {type(item).__name__}; "
            "yield text or {'role': 'assistant', 'content': ...}"
        )
    message = dict(item)
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        message["content"] = ChatMessage(role="assistant", content=content).text()
    if message.get("tool_calls"):
        message["tool_calls"] = [
            ToolCall.model_validate(call.model_dump() if isinstance(call, BaseModel) else call).model_dump()
            for call in message["tool_calls"]
        ]
    return message
