"""How a worker reads requests and writes replies for one API: plain JSON unless a spec says otherwise."""

from __future__ import annotations

from typing import Any, Optional

from litserve import codec
from litserve.transport.worker_channel import WorkItem


class JsonProtocol:
    """JSON (or form) bodies in, validated against ``request_model`` if there is one; JSON replies out."""

    def __init__(self, request_model: Optional[type] = None) -> None:
        self.request_model = request_model

    def error_body(self, status: int, detail: Any) -> bytes:
        return codec.detail_error_body(status, detail)

    def parse(self, item: WorkItem) -> Any:
        return codec.decode_payload(item.content_type, item.body, self.request_model)

    def prepare_context(self, payload: Any, context: dict) -> None:
        """Fill a request's context before its hooks run."""

    def reply(self, output: Any, context: dict) -> codec.Reply:
        return codec.encode_output(output)
