"""HTML forms and file uploads, turned into plain values a worker process can receive."""

from __future__ import annotations

import io
from typing import Any, Dict


class UploadedFile:
    """A file sent in a multipart form, as ``decode_request`` receives it.

    Mirrors the parts of ``fastapi.UploadFile`` people use: ``filename``, ``content_type``, ``file`` and
    ``read()``.
    """

    def __init__(self, filename: str, content_type: str, data: bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.file = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def __getstate__(self) -> dict:
        return {"filename": self.filename, "content_type": self.content_type, "data": self.file.getvalue()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["filename"], state["content_type"], state["data"])

    def __repr__(self) -> str:
        return f"UploadedFile(filename={self.filename!r}, content_type={self.content_type!r})"


async def form_to_dict(form: Any) -> Dict[str, Any]:
    """Form fields by name (the last value wins); uploads become ``UploadedFile``."""
    result: Dict[str, Any] = {}
    for name, value in form.multi_items():
        if hasattr(value, "read") and hasattr(value, "filename"):
            data = await value.read()
            result[name] = UploadedFile(value.filename or "", value.content_type or "", data)
        else:
            result[name] = value
    return result
