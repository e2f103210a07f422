"""LitSpec: an API shape (routes, wire format, default hooks) layered over a LitAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from litserve import codec

if TYPE_CHECKING:
    from fastapi import FastAPI

    from litserve.api import LitAPI
    from litserve.routes import Runtime
    from litserve.transport.worker_channel import WorkerChannel
    from litserve.workers.hooks import HookRunner
    from litserve.workers.skeleton import WorkerLoop


class LitSpec(codec.ErrorFormat):
    """Base class of API specs such as ``OpenAISpec``.

    A spec owns the route its LitAPI is served on, how request bodies are parsed and replies written,
    and the default ``decode_request``/``encode_response`` (and ``batch``/``unbatch``) used when the
    LitAPI does not override them.
    """

    #: Path of the route that requests go through (replaces the LitAPI's ``api_path``).
    api_path: str = "/predict"
    #: Pydantic model that request bodies are validated against (also documents the route).
    request_model: Optional[type] = None
    #: Whether replies on this route may be streamed (the worker decides per request).
    may_stream: bool = False
    #: More paths served by the same workers, by the first API with this spec when several have it (unlike
    #: ``api_paths``, which each API owns). Workers tell the paths apart by ``WorkItem.path``.
    extra_routes: List[str] = []
    #: Paths (of routes ``add_routes`` registers) served without the API key: static pages holding no data.
    public_paths: List[str] = []

    def __init__(self) -> None:
        self._lit_api: Optional[LitAPI] = None

    @property
    def api_paths(self) -> List[str]:
        """Every path this spec serves on the same workers (the worker tells them apart by ``WorkItem.path``)."""
        return [self.api_path]

    def request_model_for(self, path: str) -> Optional[type]:
        """The pydantic model that documents requests on ``path``."""
        return self.request_model

    def error_format_for(self, path: str) -> codec.ErrorFormat:
        """How errors on ``path`` are shaped."""
        return self

    def setup(self, lit_api: LitAPI) -> None:
        """Bind the spec to the LitAPI it serves; called once by ``LitServer``."""
        self._lit_api = lit_api

    # --- hooks the LitAPI falls back to --------------------------------------------------------------

    def decode_request(self, request: Any, context: Optional[dict] = None) -> Any:
        return request

    def encode_response(self, output: Any, context: Optional[dict] = None) -> Any:
        return output

    def batch(self, inputs: list) -> Any:
        from litserve.api import stack_inputs

        return stack_inputs(inputs)

    def unbatch(self, output: Any) -> list:
        return list(output)

    # --- wire format -------------------------------------------------------------------------------------

    def make_loop(self, runner: HookRunner, channel: WorkerChannel) -> WorkerLoop:
        """The worker loop that serves this spec's requests."""
        raise NotImplementedError

    def add_routes(self, app: FastAPI, runtime: Runtime, lit_apis: List[LitAPI]) -> None:
        """Register extra routes (for example ``GET /v1/models``). Called once per spec class."""

    @property
    def model_name(self) -> str:
        return type(self._lit_api).__name__ if self._lit_api is not None else "model"

    def metric_families(self, metrics_dir: Optional[str]) -> list:
        """Extra prometheus-client metric families for ``/metrics``, read from the server's metrics directory."""
        return []

    def info(self) -> Dict[str, Any]:
        return {"spec": type(self).__name__, "api_path": self.api_path}
