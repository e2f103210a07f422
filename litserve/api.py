"""LitAPI: the hooks a user overrides to turn a model into an HTTP API."""

from __future__ import annotations

import inspect
import logging
from typing import Any, Optional

from litserve.options import API_OPTION_DEFAULTS, UNSET

_logger = logging.getLogger("litserve")


class LitAPI:
    """Base class for a served model.

    Override ``setup`` and ``predict``; optionally ``decode_request``, ``batch``, ``unbatch``,
    ``encode_response``, ``health`` and ``authorize``. Each worker process calls ``setup(device)`` once,
    then runs every request through decode -> (batch) -> predict -> (unbatch) -> encode.

    Options given here win over the same options given to ``LitServer``:

    Args:
        max_batch_size: largest batch handed to ``predict`` (1 disables batching). Default 1.
        batch_timeout: seconds a worker waits to fill a batch. Default 0.0.
        api_path: the URL path of the predict endpoint. Default ``"/predict"``.
        stream: ``predict`` and ``encode_response`` are generators whose items are streamed. Default False.
        spec: an API spec such as ``OpenAISpec()`` that defines the routes and wire format. Default None.
        enable_async: allow ``async def`` hooks. Default False.
        loop: ``"auto"``, or ``ContinuousBatchingLoop()`` to serve ``add_request``/``step`` hooks (needs
            ``stream=True``). Default ``"auto"``.
        mcp: ``litserve.mcp.MCP(...)`` makes this API an MCP tool at ``/mcp/``. Default None.

    Example::

        class SquareAPI(LitAPI):
            def setup(self, device):
                self.model = lambda x: x**2

            def decode_request(self, request):
                return request["input"]

            def predict(self, x):
                return self.model(x)

            def encode_response(self, output):
                return {"output": output}
    """

    def __init__(
        self,
        max_batch_size: int = UNSET,
        batch_timeout: float = UNSET,
        api_path: str = UNSET,
        stream: bool = UNSET,
        spec: Any = UNSET,
        enable_async: bool = UNSET,
        loop: Any = UNSET,
        mcp: Any = None,
    ) -> None:
        given = {
            "max_batch_size": max_batch_size,
            "batch_timeout": batch_timeout,
            "api_path": api_path,
            "stream": stream,
            "spec": spec,
            "enable_async": enable_async,
            "loop": loop,
        }
        self._explicit_options = {name: value for name, value in given.items() if value is not UNSET}
        for name, default in API_OPTION_DEFAULTS.items():
            setattr(self, name, self._explicit_options.get(name, default))
        self.mcp = mcp

    # --- hooks -------------------------------------------------------------------------------------

    def setup(self, device: str) -> None:
        """Load the model onto ``device`` (``"cpu"``, ``"cuda:0"``, ``"mps"``). Runs once per worker."""

    def decode_request(self, request: Any, **kwargs: Any) -> Any:
        """Turn the request payload into the model's input. Default: the payload unchanged (or the spec's)."""
        spec = getattr(self, "spec", None)
        if spec is not None:
            return spec.decode_request(request, **kwargs)
        return request

    def batch(self, inputs: list) -> Any:
        """Combine decoded inputs into one batch. Default: stack tensors and arrays, else the list."""
        spec = getattr(self, "spec", None)
        if spec is not None:
            return spec.batch(inputs)
        return stack_inputs(inputs)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        """Run the model. Must be overridden."""
        raise NotImplementedError("LitAPI.predict must be implemented")

    def unbatch(self, output: Any) -> list:
        """Split a batched output into one output per request. Default: split along the first axis."""
        spec = getattr(self, "spec", None)
        if spec is not None:
            return spec.unbatch(output)
        return list(output)

    def encode_response(self, output: Any, **kwargs: Any) -> Any:
        """Turn the model's output into the response payload. Default: the output unchanged (or the spec's)."""
        spec = getattr(self, "spec", None)
        if spec is not None:
            return spec.encode_response(output, **kwargs)
        return output

    def health(self) -> bool:
        """Extra readiness check for ``/health``; return False to report 503."""
        return True

    def log(self, key: str, value: Any) -> None:
        """Hand ``(key, value)`` to every ``Logger`` given to the server, off the request path.

        Call it from any hook in a worker; it never blocks (an entry the loggers cannot keep up with is
        dropped and counted in ``/metrics``).
        """
        sink = getattr(self, "_log_sink", None)
        if sink is None:
            if not getattr(self, "_warned_no_logger", False):
                self._warned_no_logger = True
                _logger.warning("LitAPI.log(%r, ...) called, but the server has no loggers: pass loggers=", key)
            return
        sink.put(key, value)

    # --- helpers used by the engine --------------------------------------------------------------

    @property
    def options(self) -> dict:
        """The options this API was given explicitly (before ``LitServer`` fills in the rest)."""
        return dict(self._explicit_options)

    def _resolved_explicit_options(self) -> dict:
        # Subclasses that define __init__ without calling super().__init__() have no such attribute.
        return getattr(self, "_explicit_options", {})


def stack_inputs(inputs: list) -> Any:
    """Stack a list of torch tensors or numpy arrays along a new first axis; other lists stay lists."""
    if not inputs:
        return inputs
    first = inputs[0]
    module = type(first).__module__
    if module.startswith("torch") and all(type(x) is type(first) for x in inputs):
        import torch

        return torch.stack(inputs)
    if module == "numpy" and all(type(x) is type(first) for x in inputs):
        import numpy

        return numpy.stack(inputs)
    return inputs


def accepts_context(hook: Any) -> bool:
    """Whether a hook declares a ``context`` parameter."""
    try:
        return "context" in inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return False


def is_generator_hook(hook: Any) -> bool:
    """Whether a hook is a (sync or async) generator function."""
    func = getattr(hook, "__func__", hook)
    return inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)


def is_async_hook(hook: Any) -> bool:
    """Whether a hook is an ``async def`` function or async generator."""
    func = getattr(hook, "__func__", hook)
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


def request_annotation(lit_api: LitAPI) -> Optional[Any]:
    """The annotation of ``decode_request``'s first parameter, whatever its name."""
    return _first_param_annotation(lit_api.decode_request)


def response_annotation(lit_api: LitAPI) -> Optional[Any]:
    """The return annotation of ``encode_response``."""
    hints = _type_hints(lit_api.encode_response)
    return hints.get("return")


def _type_hints(func: Any) -> dict:
    import typing

    try:
        return typing.get_type_hints(func)
    except Exception:
        # Unresolvable forward references: fall back to the raw annotations.
        return dict(getattr(func, "__annotations__", {}))


def _first_param_annotation(func: Any) -> Optional[Any]:
    try:
        params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        return None
    if not params or params[0].kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        return None
    return _type_hints(func).get(params[0].name)
