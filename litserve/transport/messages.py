"""The messages that cross between API processes, workers and the supervisor, and how they are framed.

Both sides import this module, so the layout of every message is defined here once. Each API process
listens on a unix stream socket; each worker opens one connection to every API process once its
``setup`` is done, and the supervisor connects to tell them a worker exited. A message is a pickled tuple
behind an 8-byte little-endian length.

API process -> worker:
    (REQUESTS, api_server, sent_at, [(uid, deadline, content_type, body, path), ...])
        ``sent_at`` and ``deadline`` are ``time.monotonic()`` values, comparable across processes.
        ``path`` is the URL path the request came on (one API may serve several, such as an LLM's routes).
    (CANCEL, api_server, [uid, ...])
worker -> API process:
    (WORKER_READY, worker_id, incarnation)
        The first message on a worker's connection. ``incarnation`` counts the worker's restarts.
    (RESPONSES, [(uid, status, headers, body, done), ...])
        ``headers`` is None for ``application/json`` or a list of (bytes, bytes) pairs.
        A streamed response is several items with the same uid; the last one has ``done=True``.
supervisor -> API process:
    (WORKER_EXITED, worker_id, incarnation, description)
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import socket
import struct
import sys
import tempfile
from typing import Any, List, Sequence

logger = logging.getLogger("litserve")

REQUESTS = 1
CANCEL = 2
RESPONSES = 10
WORKER_READY = 11
WORKER_EXITED = 12

# Content type of a body that the API process already parsed from an HTML form (a pickled dict).
FORM_CONTENT_TYPE = "application/x-litserve-form"

_PROTOCOL = pickle.HIGHEST_PROTOCOL
_HEADER = struct.Struct("<Q")
HEADER_SIZE = _HEADER.size
# Above this size a payload is written after its header instead of being copied behind it.
_JOIN_LIMIT = 64 * 1024


def frame(message: Any) -> List[bytes]:
    """``message`` as the byte strings to write, in order: its header, then its payload."""
    payload = pickle.dumps(message, protocol=_PROTOCOL)
    header = _HEADER.pack(len(payload))
    if len(payload) <= _JOIN_LIMIT:
        return [header + payload]
    return [header, payload]


class FrameReader:
    """Reassembles messages from the bytes of one connection, however the stream split them."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list:
        """The messages completed by ``data``, in order."""
        buffer = self._buffer
        if buffer:
            buffer += data
            data = buffer
        decoded = []
        size = len(data)
        offset = 0
        view = memoryview(data)
        try:
            while size - offset >= HEADER_SIZE:
                (length,) = _HEADER.unpack_from(data, offset)
                end = offset + HEADER_SIZE + length
                if end > size:
                    break
                try:
                    decoded.append(pickle.loads(view[offset + HEADER_SIZE : end]))
                except Exception:  # one bad message must not cost the connection: the next one is intact
                    logger.exception("dropped a message that could not be decoded")
                offset = end
        finally:
            view.release()
        if data is buffer:
            del buffer[:offset]
        elif offset < size:
            buffer += data[offset:]
        return decoded


class Endpoints:
    """Where each API process listens, in a directory private to one server."""

    def __init__(self, base_dir: str) -> None:
        self.base_dir = base_dir

    @classmethod
    def create(cls) -> Endpoints:
        if sys.platform == "win32":
            raise NotImplementedError("litserve's process transport needs unix domain sockets (Linux or macOS)")
        return cls(tempfile.mkdtemp(prefix="litserve-"))

    def api_inbox(self, api_server: int) -> str:
        return os.path.join(self.base_dir, f"api-{api_server}")

    def listen(self, count: int) -> List[socket.socket]:
        """Bind the sockets of ``count`` API processes; workers may connect before they accept."""
        listeners = []
        for api_server in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(self.api_inbox(api_server))
            sock.listen(1024)
            listeners.append(sock)
        return listeners

    def cleanup(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)


def send_to_each(paths: Sequence[str], message: Any, timeout: float = 1.0) -> None:
    """Deliver ``message`` over a fresh connection to every listener in ``paths``; skips those gone."""
    data = b"".join(frame(message))
    for path in paths:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(path)
                sock.sendall(data)
        except OSError:
            pass  # that API process is gone
