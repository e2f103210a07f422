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
}

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


def __getattr__(name: str) -> Any:
    if name == "test_examples":  # ``ls.test_examples``, as in LitServe
        return importlib.import_module("litserve.test_examples")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'litserve' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list:
    return sorted(__all__)
