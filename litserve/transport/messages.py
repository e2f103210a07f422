"""The messages that cross between API processes, workers and the supervisor, and their encoding.

Both sides import this module, so the layout of every message is defined here once.

API process -> worker:
    (REQUESTS, api_server, sent_at, [(uid, deadline, content_type, body), ...])
        ``sent_at`` and ``deadline`` are ``time.monotonic()`` values, comparable across processes.
    (CANCEL, api_server, [uid, ...])
worker -> API process:
    (RESPONSES, [(uid, status, headers, body, done), ...])
        ``headers`` is None for ``application/json`` or a list of (bytes, bytes) pairs.
        A streamed response is several items with the same uid; the last one has ``done=True``.
    (WORKER_READY, worker_id)
supervisor -> API process:
    (WORKER_EXITED, worker_id, description)
"""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
from typing import Any

REQUESTS = 1
CANCEL = 2
RESPONSES = 10
WORKER_READY = 11
WORKER_EXITED = 12

# Content type of a body that the API process already parsed from an HTML form (a pickled dict).
FORM_CONTENT_TYPE = "application/x-litserve-form"

_PROTOCOL = pickle.HIGHEST_PROTOCOL


def encode(message: Any) -> bytes:
    return pickle.dumps(message, protocol=_PROTOCOL)


def decode(data: bytes) -> Any:
    return pickle.loads(data)


class Endpoints:
    """Addresses of every socket of one server: one inbox per API process, one request queue per worker."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir

    @classmethod
    def create(cls) -> Endpoints:
        return cls(tempfile.mkdtemp(prefix="litserve-"))

    def api_inbox(self, api_server: int) -> str:
        return self._address(f"api-{api_server}")

    def worker_requests(self, worker_id: int) -> str:
        return self._address(f"worker-{worker_id}")

    def _address(self, name: str) -> str:
        if sys.platform == "win32":
            # No unix sockets: derive a stable loopback port from the name within this server's range.
            raise NotImplementedError("litserve's process transport needs unix domain sockets (Linux or macOS)")
        return f"ipc://{os.path.join(self.base_dir, name)}"

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.base_dir, ignore_errors=True)
