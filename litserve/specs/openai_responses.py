"""OpenAI's Responses API, ``POST /v1/responses``, for ``OpenAISpec`` APIs (plain and streamed).

A Responses request is turned into the chat request it means (``instructions`` -> a system message,
``input`` -> messages, ``max_output_tokens`` -> ``max_tokens``, function tools -> chat tools) and runs
through the same worker, hooks and batches as ``/v1/chat/completions``; only the reply is worded the
Responses way: one ``response`` object, or the ``response.*`` event stream that ``client.responses.create``
reads. The server keeps no state: ``previous_response_id`` is refused.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Dict, List, Optional, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from litserve.codec import RequestError
from litserve.specs.openai_types import ChatCompletionRequest
from litserve.specs.openai_wire import ChatCompletionReply

RESPONSES_PATH = "/v1/responses"


class ResponsesRequest(BaseModel):
    """The fields of a Responses API request that a stateless server can honour (others are ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    input: Union[str, List[Dict[str, Any]]]
    instructions: Optional[str] = None
    max_output_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=None, ge=0, le=2)
    top_p: Optional[float] = Field(default=None, ge=0, le=1)
    stream: bool = False
    tools: Optional[List[Dict[str, Any]]] = None
    tool_choice: Optional[Union[str, Dict[str, Any]]] = None
    parallel_tool_calls: Optional[bool] = None
    metadata: Optional[Dict[str, Any]] = None
    user: Optional[str] = None
    previous_response_id: Optional[str] = None

    def to_chat_request(self) -> ChatCompletionRequest:
        """The equivalent chat request; RequestError (4xx) when the input cannot be expressed as one."""
        if self.previous_response_id is not None:
            raise RequestError(400, "previous_response_id is not supported: this server keeps no state")
        messages: List[dict] = []
        if self.instructions:
            messages.append({"role": "system", "content": self.instructions})
        if isinstance(self.input, str):
            messages.append({"role": "user", "content": self.input})
        else:
            messages.extend(_chat_message(item, index) for index, item in enumerate(self.input))
        if not messages:
            raise RequestError(400, "input is empty: send text or a list of messages")
        fields: Dict[str, Any] = {"model": self.model, "messages": messages, "stream": self.stream}
        for name, value in (("max_tokens", self.max_output_tokens), ("temperature", self.temperature)):
            if value is not None:
                fields[name] = value
        for name in ("top_p", "parallel_tool_calls", "metadata", "user"):
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        if self.tools:
            fields["tools"] = [_chat_tool(tool) for tool in self.tools]
        if self.tool_choice is not None:
            fields["tool_choice"] = _chat_tool_choice(self.tool_choice)
        try:
            return ChatCompletionRequest.model_validate(fields)
        except ValidationError as exc:
            raise RequestError(422, json.loads(exc.json(include_url=False))) from None


def document_route(app: Any) -> None:
    """Describe ``POST /v1/responses`` in the OpenAPI schema; requests are served by the fast route."""
    if any(getattr(route, "path", None) == RESPONSES_PATH for route in app.routes):
        return

    async def create_response(body: Any) -> Any:
        raise RuntimeError("served by litserve's predict endpoint")

    create_response.__annotations__ = {"body": ResponsesRequest, "return": Any}  # real types for FastAPI
    app.add_api_route(RESPONSES_PATH, create_response, methods=["POST"], tags=["OpenAI"])


def _chat_message(item: Dict[str, Any], index: int) -> dict:
    kind = item.get("type", "message")
    if kind == "message":
        if "role" not in item:
            raise RequestError(400, f"input[{index}]: a message needs a role (user, assistant, system)")
        content = item.get("content")
        if isinstance(content, list):
            content = [_chat_part(part, index) for part in content]
        return {"role": item["role"], "content": content}
    if kind == "function_call_output":
        return {"role": "tool", "tool_call_id": item.get("call_id"), "content": _text(item.get("output"))}
    if kind == "function_call":
        call = {"name": item.get("name"), "arguments": item.get("arguments", "")}
        tool_call = {"id": item.get("call_id"), "type": "function", "function": call}
        return {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    raise RequestError(400, f"input[{index}]: items of type {kind!r} are not supported")


def _chat_part(part: Any, index: int) -> dict:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    if kind == "input_image" and part.get("image_url"):
        return {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part.get("detail", "auto")}}
    raise RequestError(400, f"input[{index}]: content parts of type {kind!r} are not supported")


def _chat_tool(tool: Dict[str, Any]) -> dict:
    if tool.get("type") != "function" or not tool.get("name"):
        raise RequestError(400, f"only function tools are supported, got {tool.get('type')!r}")
    function = {name: tool[name] for name in ("name", "description", "parameters", "strict") if name in tool}
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Union[str, Dict[str, Any]]) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class ResponsesReply(ChatCompletionReply):
    """Builds the reply to one Responses request from the items its (single) choice produces."""

    keeps_items = True  # the final events and object repeat the whole text, so keep it while streaming

    def __init__(self, item: Any, request: ChatCompletionRequest, model: str, original: ResponsesRequest) -> None:
        super().__init__(item, request, model)
        self.original = original
        self.id = _new_id("resp")
        self.message_id = _new_id("msg")
        self.created = int(time.time())
        self.sequence = 0
        self.outputs: List[str] = []  # "message" or "call:<i>", in the order they were opened
        self.text_open = False

    # --- events ------------------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def add(self, choice_index: int, item: Any) -> Optional[bytes]:
        recorded = self.record(choice_index, item)
        if recorded is None or not self.streaming:
            return None
        content, tool_calls = recorded
        events = [] if self.sequence else [self._opening_events()]
        if content:
            if not self.text_open:
                events.append(self._open_text())
            index = self.outputs.index("message")
            events.append(
                self.event(
                    "response.output_text.delta",
                    item_id=self.message_id,
                    output_index=index,
                    content_index=0,
                    delta=content,
                    logprobs=[],
                )
            )
        state = self.choices[0]
        first_call = len(state.tool_calls) - len(tool_calls)
        for offset in range(len(tool_calls)):
            events.append(self._call_events(first_call + offset))
        return b"".join(events) or None

    def _opening_events(self) -> bytes:
        snapshot = self.response_object("in_progress", final=False)
        return self.event("response.created", response=snapshot) + self.event("response.in_progress", response=snapshot)

    def _open_text(self) -> bytes:
        self.text_open = True
        self.outputs.append("message")
        index = len(self.outputs) - 1
        item = {"id": self.message_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        return self.event("response.output_item.added", output_index=index, item=item) + self.event(
            "response.content_part.added", item_id=self.message_id, output_index=index, content_index=0, part=part
        )

    def _close_text(self) -> bytes:
        index = self.outputs.index("message")
        text = self.text()
        part = {"type": "output_text", "text": text, "annotations": []}
        common = {"item_id": self.message_id, "output_index": index, "content_index": 0}
        return b"".join(
            [
                self.event("response.output_text.done", **common, text=text, logprobs=[]),
                self.event("response.content_part.done", **common, part=part),
                self.event("response.output_item.done", output_index=index, item=self.message_item()),
            ]
        )

    def _call_events(self, call_index: int) -> bytes:
        self.outputs.append(f"call:{call_index}")
        index = len(self.outputs) - 1
        item = self.call_item(call_index)
        common = {"item_id": item["id"], "output_index": index}
        return b"".join(
            [
                self.event("response.output_item.added", output_index=index, item={**item, "arguments": ""}),
                self.event("response.function_call_arguments.delta", **common, delta=item["arguments"]),
                self.event("response.function_call_arguments.done", **common, arguments=item["arguments"]),
                self.event("response.output_item.done", output_index=index, item=item),
            ]
        )

    def final_stream_events(self) -> bytes:
        events = [] if self.sequence else [self._opening_events()]
        if self.text_open:
            events.append(self._close_text())
        response = self.response_object(*self._final_status())
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        events.append(self.event(kind, response=response))
        return b"".join(events)

    def completion_body(self) -> bytes:
        return orjson.dumps(self.response_object(*self._final_status()))

    # --- the response object -------------------------------------------------------------------------

    def text(self) -> str:
        return "".join(self.choices[0].content)

    def message_item(self) -> dict:
        content = [{"type": "output_text", "text": self.text(), "annotations": []}]
        item = {"id": self.message_id, "type": "message", "status": "completed", "role": "assistant"}
        return {**item, "content": content}

    def call_item(self, call_index: int) -> dict:
        call = self.choices[0].tool_calls[call_index]
        function = call.get("function") or {}
        return {
            "id": f"fc_{self.id[5:]}_{call_index}",
            "type": "function_call",
            "status": "completed",
            "call_id": call.get("id") or f"call_{call_index}",
            "name": function.get("name"),
            "arguments": function.get("arguments") or "",
        }

    def _final_status(self) -> tuple:
        if self.finish_reason(self.choices[0]) == "length":
            return "incomplete", True
        return "completed", True

    def response_object(self, status: str, final: bool) -> dict:
        state = self.choices[0]
        output: List[dict] = []
        if final:
            order = list(self.outputs)
            if "message" not in order and (self.text() or not state.tool_calls):
                order.insert(0, "message")
            order += [f"call:{i}" for i in range(len(state.tool_calls)) if f"call:{i}" not in order]
            for key in order:
                output.append(self.message_item() if key == "message" else self.call_item(int(key[5:])))
        usage = self.usage()
        original = self.original
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "model": self.model,
            "output": output,
            "usage": {
                "input_tokens": usage["prompt_tokens"],
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": usage["completion_tokens"],
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage["total_tokens"],
            }
            if final
            else None,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "instructions": original.instructions,
            "max_output_tokens": original.max_output_tokens,
            "metadata": original.metadata or {},
            "parallel_tool_calls": original.parallel_tool_calls is not False,
            "previous_response_id": None,
            "temperature": original.temperature,
            "top_p": original.top_p,
            "tool_choice": original.tool_choice or "auto",
            "tools": original.tools or [],
            "text": {"format": {"type": "text"}},
        }
