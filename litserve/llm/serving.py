"""How an ``LLMAPI`` is served: its routes (``LLMSpec``) and its worker loop (``LLMLoop``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from litserve import codec
from litserve.llm import metrics as llm_metrics
from litserve.llm.replies import DETOKENIZE_PATH, ROUTES, TOKENIZE_PATH, Reply
from litserve.specs.base import LitSpec
from litserve.specs.openai import add_models_routes, openai_error_body, sse_error_event
from litserve.specs.openai_types import ErrorDetail, ErrorResponse, model_not_found_error
from litserve.transport.worker_channel import WorkerChannel, WorkItem
from litserve.workers.continuous import ContinuousLoop
from litserve.workers.hooks import HookRunner

if TYPE_CHECKING:
    from fastapi import FastAPI

    from litserve.api import LitAPI
    from litserve.routes import Runtime


class _OpenAIErrors(codec.ErrorFormat):
    def error_body(self, status: int, detail: Any) -> bytes:
        if isinstance(detail, ErrorDetail):  # an error worded in full, code included
            return ErrorResponse(error=detail).model_dump_json().encode()
        return openai_error_body(status, detail)

    def stream_error(self, status: int, detail: Any) -> bytes:
        return sse_error_event(openai_error_body(status, detail))


OPENAI_ERRORS = _OpenAIErrors()


def is_openai_path(path: str) -> bool:
    """Paths whose errors take OpenAI's shape: ``/v1/*`` and vLLM's tokenizer routes."""
    return path.startswith("/v1/") or path in (TOKENIZE_PATH, DETOKENIZE_PATH)


PLAYGROUND_PATH = "/playground"


def model_not_found(model: str, served: str) -> codec.RequestError:
    """404 with OpenAI's ``model_not_found`` error, as OpenAI and vLLM answer a model they do not serve."""
    message = f"The model `{model}` does not exist: this server serves `{served}` (see GET /v1/models)"
    return codec.RequestError(404, model_not_found_error(message))


class LLMSpec(LitSpec):
    """LightLLM's ``/generate`` and ``/generate_stream``, OpenAI's completions, chat and models routes, vLLM's
    ``/tokenize`` and ``/detokenize``, and the chat playground (``GET /playground``, and ``GET /`` for
    browsers).

    The POST routes reach the same workers; each request carries the path it came on. Errors on ``/v1/*`` and
    the tokenizer routes use OpenAI's ``{"error": ...}`` shape, the others FastAPI's ``{"detail": ...}``. The
    playground page is static (it holds no data) and open without the API key; everything it calls needs it.
    """

    api_path = "/generate"
    may_stream = True
    public_paths = [PLAYGROUND_PATH]

    def __init__(self, model_name: str, max_model_len: Optional[int] = None) -> None:
        super().__init__()
        self._model_name = model_name
        self.max_model_len = max_model_len

    @property
    def model_name(self) -> str:
        return self._model_name

    @property
    def api_paths(self) -> List[str]:
        return list(ROUTES)

    def request_model_for(self, path: str) -> Optional[type]:
        return ROUTES[path][0]

    def error_format_for(self, path: str) -> codec.ErrorFormat:
        return OPENAI_ERRORS if is_openai_path(path) else codec.PLAIN_ERRORS

    def make_loop(self, runner: HookRunner, channel: WorkerChannel) -> LLMLoop:
        return LLMLoop(runner, channel, self)

    def add_routes(self, app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
        from litserve.llm.playground import add_playground_routes

        add_models_routes(app, runtime, lit_apis)
        add_playground_routes(app, PLAYGROUND_PATH)

    def metric_families(self, metrics_dir: Optional[str]) -> list:
        return llm_metrics.families(metrics_dir)

    def info(self) -> dict:
        return {"spec": type(self).__name__, "api_paths": self.api_paths, "model": self.model_name}


class LLMLoop(ContinuousLoop):
    """The continuous-batching loop, reading each request by the route it came on."""

    def __init__(self, runner: HookRunner, channel: WorkerChannel, spec: LLMSpec) -> None:
        super().__init__(runner, channel)
        self.spec = spec
        worker_metrics = channel.metrics
        directory = worker_metrics.directory if worker_metrics is not None else None
        self.metrics = llm_metrics.LLMMetrics(directory, worker_metrics.worker_id if worker_metrics else 0)
        self.api.metrics = self.metrics

    def request_of(self, item: WorkItem) -> Reply:
        request_model, reply_class = ROUTES[item.path]
        request = codec.decode_payload(item.content_type, item.body, request_model)
        model = getattr(request, "model", None)  # OpenAI routes only; a request without one gets ours
        if model and model != self.spec.model_name:
            raise model_not_found(model, self.spec.model_name)
        return reply_class(request, self.spec.model_name, item.submitted)

    def error_body_for(self, item: WorkItem) -> codec.ErrorBody:
        return self.spec.error_format_for(item.path).error_body

    def stream_error_for(self, item: WorkItem, reply: codec.Reply) -> bytes:
        return sse_error_event(reply[2]) if is_openai_path(item.path) else b""

    def observe(self) -> None:
        self.api.record_state(len(self.channel.pending))

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.metrics.close()
