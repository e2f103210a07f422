"""OpenAISpec: ``POST /v1/chat/completions`` and ``GET /v1/models`` as the official openai SDK expects them.

The user's ``predict`` (and ``encode_response``) yield items; each item is a string (a content delta), a dict
with ``role``, ``content``, ``tool_calls`` and optional ``prompt_tokens``/``completion_tokens``/``finish_reason``,
or a ``ChatMessage``. A streamed request gets one ``chat.completion.chunk`` event per item; otherwise the items
are gathered into one ``chat.completion``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional

import orjson
from fastapi import Response
from pydantic import BaseModel

from litserve import codec
from litserve.loops import has_async_hooks
from litserve.specs import openai_types
from litserve.specs.base import LitSpec
from litserve.specs.openai_types import *  # noqa: F403 (LitServe's users import the types from here)
from litserve.specs.openai_types import (
    ChatCompletionRequest,
    ChatMessage,
    ErrorResponse,
    ModelCard,
    ModelList,
    ToolCall,
    make_chat_completion_id,
)
from litserve.transport.worker_channel import WorkItem
from litserve.workers.loops import HookFailedError, WorkerLoop, close_generator

if TYPE_CHECKING:
    from fastapi import FastAPI

    from litserve.api import LitAPI
    from litserve.routes import Runtime
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner

__all__ = ["OpenAISpec", "openai_error_body", *openai_types.__all__]

logger = logging.getLogger("litserve")

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


class ChatReply:
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


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def iterate_items(runner: HookRunner, result: Any) -> Iterator[Any]:
    """Items of a generator, async generator or iterator; any other value is a single item."""
    if hasattr(result, "__next__") or hasattr(result, "__anext__"):
        yield from runner.iterate(result)
    else:
        yield result


class _Unit:
    """One choice of one request, run through the hooks."""

    __slots__ = ("reply", "choice", "x", "context")

    def __init__(self, reply: ChatReply, choice: int, x: Any, context: dict) -> None:
        self.reply = reply
        self.choice = choice
        self.x = x
        self.context = context


class ChatLoop(WorkerLoop):
    """Runs chat requests: each choice of each request is a unit; batches are made of units."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, spec: OpenAISpec) -> None:
        super().__init__(runner, channel)
        self.spec = spec
        self.error_body = openai_error_body
        # Whether a request's client is gone; reads new messages (an async loop swaps in one that does not:
        # there only its event loop reads the socket).
        self.is_cancelled: Callable[[WorkItem], bool] = channel.is_cancelled

    def step(self, items: List[WorkItem]) -> None:
        units = self.prepare_units(items)
        if not units:
            return
        if self.max_batch_size == 1:
            for unit in units:
                self.run_units([unit], batched=False)
        else:
            self.run_units(units, batched=True)

    def prepare_units(self, items: List[WorkItem]) -> List[_Unit]:
        units = []
        for item in items:
            try:
                request, reply = self.parse(item)
            except Exception as exc:
                self.channel.send_one(item, *codec.exception_reply(exc, "decode_request", self.error_body), True)
                continue
            for choice in range(request.n):
                context = self.spec.request_context(request)
                try:
                    x = self.runner.decode(request, context)
                except Exception as exc:
                    self.fail(reply, exc, "decode_request")
                    break
                units.append(_Unit(reply, choice, x, context))
        return units

    def parse(self, item: WorkItem) -> tuple:
        """The chat request an item carries, and the reply to build: a chat completion or a Responses reply."""
        from litserve.specs.openai_responses import RESPONSES_PATH, ResponsesReply, ResponsesRequest

        if item.path == RESPONSES_PATH:
            original = codec.decode_payload(item.content_type, item.body, ResponsesRequest)
            request = original.to_chat_request()
            return request, ResponsesReply(item, request, self.spec.model_name, original)
        request = codec.decode_payload(item.content_type, item.body, ChatCompletionRequest)
        return request, ChatReply(item, request, self.spec.model_name)

    def run_units(self, units: List[_Unit], batched: bool) -> None:
        runner = self.runner
        result = None
        hook = "predict"
        try:
            if batched:
                hook = "batch"
                x = runner.batch([unit.x for unit in units])
                hook = "predict"
                result = runner.encode(runner.predict(x, [u.context for u in units]), [u.context for u in units])
                for batch_output in iterate_items(runner, result):
                    hook = "unbatch"
                    outputs = self.unbatch(batch_output, len(units)) if batched else [batch_output]
                    hook = "encode_response"
                    if self.emit_batch(units, outputs):
                        break
                    hook = "predict"
            else:
                unit = units[0]
                result = runner.encode(runner.predict(unit.x, unit.context), unit.context)
                for output in iterate_items(runner, result):
                    hook = "encode_response"
                    self.emit(unit, output)
                    if unit.reply.finished:
                        break
                    hook = "predict"
        except HookFailedError as failure:
            self.fail_units(units, failure.error, failure.hook)
        except Exception as exc:
            self.fail_units(units, exc, hook)
        finally:
            close_generator(result)
        for unit in units:
            self.choice_done(unit)

    def emit_batch(self, units: List[_Unit], outputs: List[Any]) -> bool:
        """Give each choice of a batch its output of one step; True once every choice is finished."""
        for unit, output in zip(units, outputs):
            self.emit(unit, output)
        return all(unit.reply.finished for unit in units)

    def fail_units(self, units: List[_Unit], exc: BaseException, hook: str) -> None:
        for unit in units:
            self.fail(unit.reply, exc, hook)

    def emit(self, unit: _Unit, output: Any) -> None:
        reply = unit.reply
        if reply.finished:
            return
        if self.is_cancelled(reply.item):
            reply.finished = True
            return
        event = reply.add(unit.choice, output)
        if event is not None:
            headers = None
            if not reply.started:
                headers = SSE_HEADERS
                reply.started = True
            self.channel.send_one(reply.item, 200, headers, event, False)

    def choice_done(self, unit: _Unit) -> None:
        reply = unit.reply
        reply.choices[unit.choice].done = True
        if reply.finished or not all(state.done for state in reply.choices):
            return
        reply.finished = True
        if reply.streaming:
            self.channel.send_one(
                reply.item, 200, None if reply.started else SSE_HEADERS, reply.final_stream_events(), True
            )
        else:
            self.channel.send_one(reply.item, 200, None, reply.completion_body(), True)

    def fail(self, reply: ChatReply, exc: BaseException, hook: str) -> None:
        if reply.finished:
            return
        reply.finished = True
        status, headers, body = codec.exception_reply(exc, hook, self.error_body)
        if reply.started:
            # Mid-stream: an OpenAI error event makes the SDK raise; then the stream ends.
            self.channel.send_one(reply.item, 200, None, sse_error_event(body), True)
        else:
            self.channel.send_one(reply.item, status, headers, body, True)


class OpenAISpec(LitSpec):
    """Serve a LitAPI as OpenAI's Chat Completions API at ``/v1/chat/completions``.

    Args:
        model_name: the id listed at ``GET /v1/models`` and echoed when a request names no model
            (default: the LitAPI's class name).

    Example::

        class ChatAPI(ls.LitAPI):
            def setup(self, device):
                self.model = load_model(device)

            def predict(self, messages, context):
                for token in self.model.stream(messages, max_tokens=context["max_tokens"]):
                    yield token

        ls.LitServer(ChatAPI(), spec=ls.OpenAISpec()).run(port=8000)
    """

    api_path = "/v1/chat/completions"
    request_model = ChatCompletionRequest
    may_stream = True

    @property
    def extra_routes(self) -> List[str]:
        """``POST /v1/responses`` (OpenAI's Responses API) on the same workers as chat completions."""
        from litserve.specs.openai_responses import RESPONSES_PATH

        return [RESPONSES_PATH]

    def __init__(self, model_name: Optional[str] = None) -> None:
        super().__init__()
        self._model_name = model_name

    @property
    def model_name(self) -> str:
        return self._model_name or super().model_name

    def request_context(self, request: ChatCompletionRequest) -> dict:
        """The request's fields other than ``messages``, for the user's hooks (nested values as plain dicts)."""
        return {name: _plain(getattr(request, name)) for name in type(request).model_fields if name != "messages"}

    def decode_request(self, request: ChatCompletionRequest, context: Optional[dict] = None) -> List[dict]:
        """Default: the messages as a list of dicts, ready for a tokenizer's chat template."""
        return [message.model_dump(exclude_none=True) for message in request.messages]

    def encode_response(self, output: Any, context: Optional[dict] = None) -> Any:
        """Default: items pass through unchanged (strings, dicts or ChatMessages)."""
        return output

    def error_body(self, status: int, detail: Any) -> bytes:
        return openai_error_body(status, detail)

    def stream_error(self, status: int, detail: Any) -> bytes:
        return sse_error_event(openai_error_body(status, detail))

    def make_loop(self, runner: HookRunner, channel: WorkerChannel) -> WorkerLoop:
        if runner.options.enable_async and has_async_hooks(runner.lit_api):
            from litserve.specs.openai_async import AsyncChatLoop

            return AsyncChatLoop(runner, channel, self)
        return ChatLoop(runner, channel, self)

    def add_routes(self, app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
        from litserve.specs.openai_responses import document_route

        add_models_routes(app, runtime, lit_apis)
        document_route(app)


def add_models_routes(app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
    """``GET /v1/models`` and ``GET /v1/models/{id}`` listing every model served through an OpenAI spec.

    The API key, when set, is checked by the app's outer layer (``litserve.auth.ApiKeyLayer``)."""
    if any(getattr(route, "path", None) == "/v1/models" for route in app.routes):
        return

    def cards() -> List[ModelCard]:
        found: Dict[str, Optional[int]] = {}
        for api in lit_apis:
            spec = getattr(api, "spec", None)
            serves_openai = isinstance(spec, LitSpec) and any(path.startswith("/v1/") for path in spec.api_paths)
            if serves_openai and spec.model_name not in found:
                found[spec.model_name] = getattr(spec, "max_model_len", None)
        return [ModelCard(id=name, created=0, max_model_len=length) for name, length in found.items()]

    @app.get("/v1/models", tags=["OpenAI"])
    async def list_models() -> Response:
        return Response(ModelList(data=cards()).model_dump_json(), media_type="application/json")

    @app.get("/v1/models/{model_id:path}", tags=["OpenAI"])
    async def retrieve_model(model_id: str) -> Response:
        for card in cards():
            if card.id == model_id:
                return Response(card.model_dump_json(), media_type="application/json")
        return _error_response(404, f"The model '{model_id}' does not exist")


def _error_response(status: int, message: str) -> Response:
    return Response(openai_error_body(status, message), status_code=status, media_type="application/json")
