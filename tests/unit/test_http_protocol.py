"""The request-head limits of litserve's uvicorn protocol, fed plain bytes split every possible way."""

from __future__ import annotations

import pytest

from litserve.http_protocol import _Deadlines, guarded_protocol, resolve_client_timeout


class HeadCounter(_Deadlines):
    """Only the head accounting of the protocol, without a transport."""

    def __init__(self, max_bytes: int, max_lines: int) -> None:
        self.max_header_bytes, self.max_header_lines = max_bytes, max_lines
        self._head_bytes = self._head_lines = 0
        self._head_tail = b""

    def feed(self, *chunks: bytes) -> bool:
        """Like the protocol: chunks are checked until the parser has the whole head (then a request runs)."""
        seen = b""
        for chunk in chunks:
            if b"\r\n\r\n" in seen:
                break
            if not self._head_within_limits(chunk):
                return False
            seen += chunk
        return True


HEAD = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n"
BODY = b"x" * 300  # arrives in the same chunks: never counted as head


def test_only_the_head_counts_wherever_the_stream_is_split():
    data = HEAD + BODY
    for split in range(1, len(data)):
        chunks = (data[:split], data[split:])
        exact = HeadCounter(max_bytes=len(HEAD), max_lines=HEAD.count(b"\n"))
        assert exact.feed(*chunks), split
        assert exact._head_bytes == len(HEAD), split
        assert not HeadCounter(max_bytes=len(HEAD) - 1, max_lines=100).feed(*chunks), split
        assert not HeadCounter(max_bytes=10_000, max_lines=HEAD.count(b"\n") - 1).feed(*chunks), split


def test_a_head_fed_a_byte_at_a_time_is_refused_once_it_passes_the_limit():
    counter = HeadCounter(max_bytes=100, max_lines=1000)
    head = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 200
    results = [counter.feed(head[i : i + 1]) for i in range(len(head))]
    assert results.index(False) == 100


def test_timeouts_are_positive_numbers_or_none():
    assert resolve_client_timeout(None, "t") is None and resolve_client_timeout(False, "t") is None
    assert resolve_client_timeout(2, "t") == 2.0
    for bad in (0, -1, "5", True):
        with pytest.raises(ValueError, match="positive number"):
            resolve_client_timeout(bad, "request_header_timeout")


@pytest.mark.parametrize("http", ["auto", "h11", "httptools"])
def test_the_guarded_protocol_subclasses_uvicorns_choice(http):
    from litserve.http_protocol import resolve_protocol

    protocol = guarded_protocol(http, header_timeout=3, body_timeout=None)
    assert issubclass(protocol, resolve_protocol(http))
    assert protocol.header_timeout == 3 and protocol.body_timeout is None
