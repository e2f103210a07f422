"""OpenAISpec: ``POST /v1/chat/completions`` and ``GET /v1/models`` as the official openai SDK expects them.

The user's ``predict`` (and ``encode_response``) yield items; each item is a string (a content delta), a dict
with ``role``, ``content``, ``tool_calls`` and optional ``prompt_tokens``/``completion_tokens``/``finish_reason``,
or a ``ChatMessage``. A streamed request gets one ``chat.completion.chunk`` event per item; otherwise the items
are gathered into one ``chat.completion``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from fastapi import Response
from pydantic import BaseModel

from litserve.loops import has_async_hooks
from litserve.specs import openai_types
from litserve.specs.base import LitSpec
from litserve.specs.openai_responses import RESPONSES_PATH, document_route
from litserve.specs.openai_types import *  # noqa: F403 (LitServe's users import the types from here)
from litserve.specs.openai_types import (
    ChatCompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    model_not_found_error,
)
from litserve.specs.openai_wire import SSE_HEADERS, openai_error_body, sse_error_event

if TYPE_CHECKING:
    from fastapi import FastAPI

    from litserve.api import LitAPI
    from litserve.routes import Runtime
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner
    from litserve.workers.skeleton import WorkerLoop

__all__ = ["OpenAISpec", "SSE_HEADERS", "openai_error_body", "sse_error_event", *openai_types.__all__]

logger = logging.getLogger("litserve")


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


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
        """The chat loop, sync or (``enable_async`` with async hooks) async; it runs in the worker process."""
        from litserve.specs.chat_loop import AsyncChatLoop, SyncChatLoop

        if runner.options.enable_async and has_async_hooks(runner.lit_api):
            return AsyncChatLoop(runner, channel, self)
        return SyncChatLoop(runner, channel, self)

    def add_routes(self, app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
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
        body = ErrorResponse(error=model_not_found_error(f"The model '{model_id}' does not exist"))
        return Response(body.model_dump_json(), status_code=404, media_type="application/json")
