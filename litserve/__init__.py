"""litserve: turn any model into a fast, dependable HTTP API."""

from fastapi import HTTPException, Request, Response

from litserve import test_examples  # ``ls.test_examples``, as in LitServe
from litserve.api import LitAPI
from litserve.callbacks import Callback
from litserve.forms import UploadedFile
from litserve.loggers import Logger
from litserve.server import LitServer
from litserve.specs import LitSpec, OpenAIEmbeddingSpec, OpenAISpec

__version__ = "0.1.0"

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
