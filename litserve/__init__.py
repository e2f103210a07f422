"""litserve: turn any model into a fast, dependable HTTP API."""

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Names are imported on first use: a worker process (which re-imports the user's script) then loads only
# what it runs, not the HTTP front end (FastAPI, uvicorn), and starts faster.
_EXPORTS = {
    "Callback": "litserve.callbacks",
    "HTTPException": "fastapi",
    "LitAPI": "litserve.api",
    "LitServer": "litserve.server",
    "LitSpec": "litserve.specs",
    "Logger": "litserve.loggers",
    "OpenAIEmbeddingSpec": "litserve.specs",
    "OpenAISpec": "litserve.specs",
    "Request": "fastapi",
    "Response": "fastapi",
    "UploadedFile": "litserve.forms",
    "configure_logging": "litserve.utils",
    "set_trace": "litserve.utils",
    "set_trace_if_debug": "litserve.utils",
}

# Submodules reachable as attributes (``ls.middlewares.MaxSizeMiddleware``), as in LitServe.
_SUBMODULES = (
    "api",
    "callbacks",
    "connector",
    "constants",
    "loggers",
    "loops",
    "middlewares",
    "python_client",
    "server",
    "specs",
    "test_examples",
    "transport",
    "utils",
)

__all__ = [
    "Callback",
    "HTTPException",
    "LitAPI",
    "LitServer",
    "LitSpec",
    "Logger",
    "OpenAIEmbeddingSpec",
    "OpenAISpec",
    "Request",
    "Response",
    "UploadedFile",
    "configure_logging",
    "set_trace",
    "set_trace_if_debug",
    "test_examples",
    "__version__",
]

if TYPE_CHECKING:
    from fastapi import HTTPException, Request, Response

    from litserve import test_examples
    from litserve.api import LitAPI
    from litserve.callbacks import Callback
    from litserve.forms import UploadedFile
    from litserve.loggers import Logger
    from litserve.server import LitServer
    from litserve.specs import LitSpec, OpenAIEmbeddingSpec, OpenAISpec
    from litserve.utils import configure_logging, set_trace, set_trace_if_debug


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"litserve.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'litserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted({*__all__, *_EXPORTS, *_SUBMODULES})
