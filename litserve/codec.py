"""Request payload decoding, response encoding and error bodies, done inside worker processes.

Keeping this work in the worker frees the API process to do nothing but move bytes.
"""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any, Callable, List, Optional, Tuple

import orjson
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from litserve.transport.messages import FORM_CONTENT_TYPE

logger = logging.getLogger("litserve")

Headers = Optional[List[Tuple[bytes, bytes]]]
Reply = Tuple[int, Headers, bytes]

JSON_LINES_HEADERS = [(b"content-type", b"application/x-ndjson")]
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8")]
BINARY_HEADERS = [(b"content-type", b"application/octet-stream")]

_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class RequestError(Exception):
    """A problem with the client's request, answered with a 4xx status and a message."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def decode_payload(content_type: str, body: bytes, request_model: Optional[type]) -> Any:
    """Parse a request body (JSON, or a form the API process already parsed) and validate it."""
    if content_type == FORM_CONTENT_TYPE:
        payload = pickle.loads(body)
    else:
        payload = parse_json(body)
    if request_model is None:
        return payload
    try:
        return request_model.model_validate(payload)
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False))
        for error in errors:
            error["loc"] = ["body", *error.get("loc", [])]
        raise RequestError(422, errors) from None


def parse_json(body: bytes) -> Any:
    """Parse JSON, answering 400 with the reason for anything that is not a valid JSON document."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
    if "surrogate" in reason:
        # An escaped lone surrogate ("\ud800") is no character: no hook could encode it, nor could we echo it.
        raise RequestError(400, f"Request body is not valid JSON: {reason}") from None
    # Python's parser accepts a little more than orjson (NaN, Infinity): let it decide.
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(400, "Request body is not valid JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise RequestError(400, "Request body is not valid JSON: it is not UTF-8 text") from None
    except ValueError:
        raise RequestError(400, f"Request body is not valid JSON: {reason}") from None


def encode_output(output: Any) -> Reply:
    """Turn what ``encode_response`` returned into (status, headers, body)."""
    if isinstance(output, Response):
        return output.status_code, list(output.raw_headers), bytes(output.body)
    if isinstance(output, BaseModel):
        return 200, None, output.model_dump_json().encode()
    if isinstance(output, (bytes, bytearray, memoryview)):
        return 200, BINARY_HEADERS, bytes(output)
    return 200, None, dumps(output)


def encode_stream_item(item: Any) -> bytes:
    """One streamed item on the wire: strings and bytes as they are, anything else as one JSON line."""
    if isinstance(item, str):
        return item.encode()
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, BaseModel):
        return item.model_dump_json().encode() + b"\n"
    return dumps(item) + b"\n"


def stream_headers(first_item: Any) -> Headers:
    """The content type of a stream, decided by its first item."""
    if isinstance(first_item, str):
        return TEXT_HEADERS
    if isinstance(first_item, (bytes, bytearray)):
        return BINARY_HEADERS
    return JSON_LINES_HEADERS


def dumps(value: Any) -> bytes:
    """Serialize to JSON, accepting numpy arrays, torch tensors and pydantic models inside."""
    return orjson.dumps(value, default=_to_jsonable, option=_ORJSON_OPTIONS)


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if hasattr(value, "tolist"):  # torch tensors, numpy scalars of odd dtypes
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Turns (status, detail) into an error body; specs such as OpenAI's bring their own.
ErrorBody = Callable[[int, Any], bytes]


def detail_error_body(status: int, detail: Any) -> bytes:
    """The error shape FastAPI uses: ``{"detail": ...}``."""
    return orjson.dumps({"detail": detail})


class ErrorFormat:
    """How a route words the errors the server answers itself: whole replies, and the end of a broken stream."""

    def error_body(self, status: int, detail: Any) -> bytes:
        return detail_error_body(status, detail)

    def stream_error(self, status: int, detail: Any) -> bytes:
        """The last bytes of a stream that failed after it started (plain streams just end)."""
        return b""


PLAIN_ERRORS = ErrorFormat()


def error_reply(status: int, detail: Any, headers: Headers = None, error_body: ErrorBody = detail_error_body) -> Reply:
    """A complete JSON error response."""
    if headers:
        headers = [(b"content-type", b"application/json"), *headers]
    return status, headers, error_body(status, detail)


def exception_reply(exc: BaseException, hook: str, error_body: ErrorBody = detail_error_body) -> Reply:
    """The response for an exception raised while serving; never exposes a traceback."""
    if isinstance(exc, RequestError):
        return error_reply(exc.status, exc.detail, error_body=error_body)
    if isinstance(exc, HTTPException):
        headers = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()] or None
        return error_reply(exc.status_code, exc.detail, headers, error_body)
    logger.error("%s raised %s", hook, type(exc).__name__, exc_info=exc)
    return error_reply(500, internal_error_message(exc, hook), error_body=error_body)


def internal_error_message(exc: BaseException, hook: str) -> str:
    return f"Internal server error: {hook} failed ({type(exc).__name__}). See the server log."
