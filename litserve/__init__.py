"""litserve: turn any model into a fast, dependable HTTP API."""

from fastapi import Request, Response

from litserve.api import LitAPI
from litserve.forms import UploadedFile
from litserve.server import LitServer

__version__ = "0.1.0"

__all__ = ["LitAPI", "LitServer", "Request", "Response", "UploadedFile", "__version__"]
