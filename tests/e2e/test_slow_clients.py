"""Slow and hostile connections: request heads and bodies that trickle or stall, oversized heads, odd bodies.

Each test talks raw HTTP/1.1 over a socket to a real server, on both of uvicorn's HTTP parsers.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Optional, Tuple

import httpx
import pytest

from tests.conftest import wait_for

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0
# Generous bound on how long the server may take to close a connection after a deadline: catches hangs only.
CLOSE_BOUND_S = 10.0


@pytest.fixture(params=["httptools", "h11"], scope="module")
def server(request, tmp_path_factory):
    from tests.conftest import start_server

    gate_dir = tmp_path_factory.mktemp(f"gate-{request.param}")
    running = start_server(
        gate_dir,
        "tests.apps:CrashAPI",
        api_kwargs={"gate_dir": str(gate_dir)},
        run_kwargs={"http": request.param},
        request_header_timeout=HEADER_TIMEOUT_S,
        request_body_timeout=BODY_TIMEOUT_S,
    )
    running.gate_dir = gate_dir
    yield running
    running.stop()


def connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=CLOSE_BOUND_S)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails the test if it never does)."""
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk


def send_slowly(sock: socket.socket, data: bytes, interval: float, stop: threading.Event) -> Optional[Exception]:
    for i in range(len(data)):
        if stop.is_set():
            return None
        try:
            sock.sendall(data[i : i + 1])
        except OSError as exc:
            return exc
        stop.wait(interval)
    return None


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def request_bytes(body: bytes, extra_headers: bytes = b"") -> bytes:
    return (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + extra_headers
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def test_a_connection_that_sends_nothing_is_closed_with_408(server):
    with connect(server) as sock:
        opened = time.monotonic()
        response = read_until_closed(sock)
    assert status_of(response) == 408
    assert HEADER_TIMEOUT_S * 0.9 <= time.monotonic() - opened < CLOSE_BOUND_S


def test_a_head_trickling_a_byte_at_a_time_is_closed_after_the_header_timeout(server):
    head = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 200 + b"\r\n\r\n"
    stop = threading.Event()
    with connect(server) as sock:
        opened = time.monotonic()
        sender = threading.Thread(target=send_slowly, args=(sock, head, 0.05, stop), daemon=True)
        sender.start()
        try:
            response = read_until_closed(sock)
        finally:
            stop.set()
            sender.join(5)
    # Bytes kept coming, but the head as a whole was late: progress does not buy more time.
    assert status_of(response) == 408 and b"request head" in response
    assert time.monotonic() - opened < CLOSE_BOUND_S


def test_a_stalled_body_is_closed_and_never_reaches_a_worker(server):
    # A complete JSON document in a chunked body whose last chunk never comes.
    document = b'{"id": "stalled-body"}'
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    with connect(server) as sock:
        sock.sendall(head + b"%x\r\n" % len(document) + document + b"\r\n")
        stalled_at = time.monotonic()
        response = read_until_closed(sock)
    assert status_of(response) == 408 and b"body stopped" in response
    assert time.monotonic() - stalled_at < CLOSE_BOUND_S
    # The server still serves, and the worker never saw the stalled request.
    assert httpx.post(f"{server.url}/predict", json={"id": "after"}).status_code == 200
    assert (server.gate_dir / "started-after").exists()
    assert not (server.gate_dir / "started-stalled-body").exists()


def test_a_body_that_keeps_arriving_slowly_is_served(server):
    # Three times the body timeout in all, but never a pause as long as it.
    body = b'{"id": "slow-body", "pad": "' + b"x" * 20 + b'"}'
    interval = 3 * BODY_TIMEOUT_S / len(body)
    with connect(server) as sock:
        sock.sendall(request_bytes(b"")[: -len(b"0\r\n\r\n")] + str(len(body)).encode() + b"\r\n\r\n")
        error = send_slowly(sock, body, interval, threading.Event())
        assert error is None
        response = sock.recv(65536)
    assert status_of(response) == 200
    assert (server.gate_dir / "started-slow-body").exists()


def test_a_keep_alive_connection_may_wait_before_its_next_request(server):
    with connect(server) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_one_response(sock) == (200, b"alive")  # the whole response: a body may come in its own segment
        # Idle longer than the header timeout (but within uvicorn's keep-alive): the next head is on time.
        time.sleep(HEADER_TIMEOUT_S * 1.5)
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_one_response(sock) == (200, b"alive")


@pytest.mark.parametrize(
    "head",
    [
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(10_000)) + b"\r\n",
    ],
    ids=["100 KB request line", "1 MB header", "10,000 headers"],
)
def test_oversized_heads_are_refused_at_once(server, head):
    with connect(server) as sock:
        started = time.monotonic()
        try:
            sock.sendall(head)
        except OSError:
            pass  # the server may close before it has read everything
        response = read_until_closed(sock)
    assert status_of(response) in (400, 431)
    assert time.monotonic() - started < CLOSE_BOUND_S
    assert httpx.get(f"{server.url}/health").status_code == 200


# httptools only: h11 parses in Python at ~35 us a chunk, 100 s for this body (httptools is the default parser).
@pytest.mark.parametrize("server", ["httptools"], indirect=True)
def test_a_3mb_body_in_one_byte_chunks_is_served_while_health_answers(server):
    body = b'{"id": "tiny-chunks", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    wire = b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n\r\n"
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    result = {}

    def upload() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
            sock.sendall(head + wire)
            result["response"] = sock.recv(65536)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    health_codes = []
    while uploader.is_alive() and len(health_codes) < 1000:
        health_codes.append(httpx.get(f"{server.url}/livez", timeout=CLOSE_BOUND_S).status_code)
    uploader.join(120)
    assert not uploader.is_alive()
    assert set(health_codes) <= {200}
    assert status_of(result["response"]) == 200
    assert (server.gate_dir / "started-tiny-chunks").exists()


def test_a_pathological_multipart_content_type_is_answered_quickly(server):
    content_type = b"multipart/form-data; " + b"a=b; " * 2000 + b"boundary=xyz"
    started = time.monotonic()
    response = httpx.post(
        f"{server.url}/predict",
        content=b"\r\n" * 100_000 + b"--xyz--\r\n",
        headers={"content-type": content_type.decode()},
        timeout=CLOSE_BOUND_S,
    )
    assert response.status_code == 400 and "Content-Type" in response.json()["detail"]
    assert time.monotonic() - started < CLOSE_BOUND_S
    wait_for(lambda: httpx.get(f"{server.url}/health").status_code == 200, timeout=5, message="health")


def read_one_response(sock: socket.socket) -> Tuple[int, bytes]:
    """(status, body) of the next response on a kept-alive connection (Content-Length bodies only)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"content-length: (\d+)", head, re.IGNORECASE).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return status_of(head), body


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_body_left_unread_after_an_early_answer_is_drained_and_the_connection_serves_on(serve, http):
    server = serve("tests.apps:SquareAPI", max_payload_size=1000, run_kwargs={"http": http}, request_header_timeout=1)
    # Larger than the head limits, slower than the header timeout: none of it may count as the next head.
    body = b'{"input": 1, "padding": "' + b"x" * 100_000 + b'"}'
    head = request_bytes(body)[: -len(body)]
    with connect(server) as sock:
        sock.sendall(head)
        assert read_one_response(sock)[0] == 413  # answered from Content-Length, the body unread
        time.sleep(HEADER_TIMEOUT_S * 1.5)
        sock.sendall(body)
        sock.sendall(request_bytes(b'{"input": 3}'))
        status, answer = read_one_response(sock)
    assert status == 200 and answer == b'{"output":9}'
