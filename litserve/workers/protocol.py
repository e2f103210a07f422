"""How a worker reads requests and writes replies for one API: plain JSON unless a spec says otherwise."""

from __future__ import annotations

import logging
from typing import Any, Optional

from litserve import codec
from litserve.transport.worker_channel import WorkItem

logger = logging.getLogger("litserve")


class JsonProtocol:
    """JSON (or form) bodies in, validated against ``request_model`` if there is one; JSON replies out."""

    def __init__(self, request_model: Optional[type] = None) -> None:
        self.request_model = request_model

    def error_body(self, status: int, detail: Any) -> bytes:
        return codec.detail_error_body(status, detail)

    def parse(self, item: WorkItem) -> Any:
        return codec.decode_payload(item.content_type, item.body, self.request_model)

    def client_error(self, exc: Exception, payload: Any) -> Optional[codec.RequestError]:
        """A 400 for a ``KeyError`` that ``decode_request`` raised looking up a key the JSON body lacks.

        Only for plain-dict APIs (no request model validated the body): the request was wrong, not the server.
        The traceback still goes to the log, in case the lookup was the server's own.
        """
        if self.request_model is not None or not isinstance(exc, KeyError) or not isinstance(payload, dict):
            return None
        key = exc.args[0] if len(exc.args) == 1 else None
        if not isinstance(key, (str, int)) or key in payload or key in _hashable_values(payload):
            return None  # the body has that key, or the lookup was keyed by what the client sent
        logger.warning("decode_request raised KeyError(%r): answered 400", key, exc_info=exc)
        return codec.RequestError(400, f"The request is missing the field {key!r} (decode_request raised KeyError)")

    def prepare_context(self, payload: Any, context: dict) -> None:
        """Fill a request's context before its hooks run."""

    def reply(self, output: Any, context: dict) -> codec.Reply:
        return codec.encode_output(output)


def _hashable_values(payload: dict) -> set:
    return {value for value in payload.values() if isinstance(value, (str, int))}
