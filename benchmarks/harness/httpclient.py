"""A minimal HTTP/1.1 client over asyncio streams (keep-alive, Content-Length and chunked bodies).

It does only what the benchmarks need, so that client-side cost stays small next to what is measured.
It talks to loopback addresses only.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Optional, TypeVar

T = TypeVar("T")
READ_SIZE = 1 << 16


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def build_post(host: str, port: int, path: str, body: bytes) -> bytes:
    """Return the bytes of a keep-alive JSON POST request."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


def probe_status(host: str, port: int, path: str, timeout: float = 1.0) -> Optional[int]:
    """GET ``path`` on a fresh blocking connection; return the status code, or None if nothing answered."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode("ascii")
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            status_line = sock.recv(256).split(b"\r\n", 1)[0]
    except OSError:
        return None
    parts = status_line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


class ChunkedDecoder:
    """Incremental decoder for a chunked transfer-encoded body (trailers are skipped)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._remaining: Optional[int] = None  # data bytes left in the current chunk; None: expect a size line
        self._last_chunk_seen = False
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Add raw bytes from the socket; return the payload bytes they complete."""
        self._buf += data
        out = bytearray()
        while not self.done:
            if self._last_chunk_seen:
                self._consume_trailers()
                break
            if self._remaining is None:
                end = self._buf.find(b"\r\n")
                if end < 0:
                    break
                size = int(bytes(self._buf[:end]).split(b";", 1)[0], 16)
                del self._buf[: end + 2]
                self._remaining = size
                self._last_chunk_seen = size == 0
                continue
            take = min(self._remaining, len(self._buf))
            out += self._buf[:take]
            del self._buf[:take]
            self._remaining -= take
            if self._remaining or len(self._buf) < 2:
                break
            del self._buf[:2]  # CRLF after the chunk data
            self._remaining = None
        return bytes(out)

    def _consume_trailers(self) -> None:
        """Skip the (normally empty) trailer section after the last chunk, once it is fully buffered."""
        if self._buf.startswith(b"\r\n"):
            end = 2
        else:
            found = self._buf.find(b"\r\n\r\n")
            if found < 0:
                return
            end = found + 4
        del self._buf[:end]
        self.done = True


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def open(self) -> None:
        """Connect and disable Nagle's algorithm."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = self.reader = None

    def send(self, request: bytes) -> None:
        """Queue raw request bytes (from ``build_post``) for writing."""
        assert self.writer is not None, "open() first"
        self.writer.write(request)

    async def read_head(self) -> tuple[int, dict[str, str]]:
        """Read the status line and headers; return (status, lower-cased headers)."""
        assert self.reader is not None, "open() first"
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def iter_body(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """Yield the response body as it arrives (decoded if chunked)."""
        assert self.reader is not None, "open() first"
        if "content-length" in headers:
            yield await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            decoder = ChunkedDecoder()
            while not decoder.done:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    raise ConnectionError("connection closed inside a chunked body")
                payload = decoder.feed(data)
                if payload:
                    yield payload
        else:
            while data := await self.reader.read(READ_SIZE):
                yield data

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send a prepared request and read the whole response; return (status, body)."""
        self.send(request)
        status, headers = await self.read_head()
        body = b"".join([chunk async for chunk in self.iter_body(headers)])
        return status, body
