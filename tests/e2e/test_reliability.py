"""Reliability: dead workers, overload, graceful shutdown, orphans, oversized and broken request bodies."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import pytest

from tests.conftest import wait_for

# --- helpers ---------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def session_pids(session: int) -> List[int]:
    """Live processes of a session: the test servers start one per server (start_new_session=True)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[3]) == session and fields[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not found for {pid}")


def health(url: str) -> int:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code
    except httpx.TransportError:
        return 0


def gauge(url: str, name: str) -> float:
    """The value of an unlabelled-but-for-path metric at ``/metrics`` (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return 0.0


class Background:
    """Sends one request in a thread and keeps the response (or the error) and when it came."""

    def __init__(self, url: str, body: dict, timeout: float = 60) -> None:
        self.response: Optional[httpx.Response] = None
        self.error: Optional[Exception] = None
        self.finished_at: Optional[float] = None
        self._thread = threading.Thread(target=self._send, args=(url, body, timeout), daemon=True)
        self._thread.start()

    def _send(self, url: str, body: dict, timeout: float) -> None:
        try:
            self.response = httpx.post(url, json=body, timeout=timeout)
        except Exception as exc:  # the tests look at what went wrong
            self.error = exc
        self.finished_at = time.monotonic()

    def wait(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "request still running"

    def join(self, timeout: float) -> httpx.Response:
        self.wait(timeout)
        assert self.response is not None, f"request failed: {self.error!r}"
        return self.response


# --- worker supervision ----------------------------------------------------------------------------


def test_killed_worker_fails_its_requests_at_once_then_is_restarted(serve, tmp_path):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, timeout=120)
    url = f"{server.url}/predict"
    worker = httpx.post(url, json={}).json()["pid"]

    # One request runs (for a minute), five wait behind it.
    held = [Background(url, {"id": i, "sleep": 60}) for i in range(6)]
    started = lambda: sorted(tmp_path.glob("started-*"))  # noqa: E731
    wait_for(lambda: started(), timeout=10, message="the first request to run")
    wait_for(lambda: gauge(server.url, "litserve_requests_in_flight") == 6, timeout=10, message="6 in flight")
    first = started()
    assert len(first) == 1

    killed_at = time.monotonic()
    os.kill(worker, signal.SIGKILL)
    responses = [request.join(timeout=10) for request in held]
    assert [r.status_code for r in responses] == [503] * 6
    assert all("SIGKILL" in r.json()["detail"] for r in responses)
    assert max(request.finished_at for request in held) - killed_at < 2.0, "held requests were not failed at once"

    # Not ready while the worker is down, then served by a new worker.
    assert health(server.url) == 503
    wait_for(lambda: health(server.url) == 200, timeout=60, message="the worker to be restarted")
    restarted = httpx.post(url, json={"id": "after"})
    assert restarted.status_code == 200 and restarted.json()["pid"] != worker
    # Requests that were answered 503 never run on the new worker.
    assert started() == sorted(first + [tmp_path / "started-after"])
    assert "was killed by SIGKILL" in server.output() and "restarting" in server.output()
    assert gauge(server.url, "litserve_worker_restarts_total") == 1


def test_worker_crashes_of_every_kind_give_503_and_a_restart(serve):
    server = serve("tests.apps:CrashAPI")
    url = f"{server.url}/predict"
    for how, description in [("segfault", "SIGSEGV"), ("exit", "code 7"), ("system_exit", "code 5")]:
        before = httpx.post(url, json={}).json()["pid"]
        started = time.monotonic()
        crashed = httpx.post(url, json={"crash": how}, timeout=30)
        assert crashed.status_code == 503, how
        assert description in crashed.json()["detail"]
        assert time.monotonic() - started < 5
        wait_for(lambda: health(server.url) == 200, timeout=60, message=f"a restart after {how}")
        assert httpx.post(url, json={}).json()["pid"] != before
    assert server.process.poll() is None


def test_restart_workers_false_stops_the_server_cleanly(serve, tmp_path):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, restart_workers=False)
    url = f"{server.url}/predict"
    worker = httpx.post(url, json={}).json()["pid"]
    group = session_pids(server.process.pid)
    held = Background(url, {"id": "held", "sleep": 60})
    wait_for(lambda: (tmp_path / "started-held").exists(), timeout=10, message="the request to run")

    os.kill(worker, signal.SIGKILL)
    assert held.join(timeout=10).status_code == 503
    assert server.wait_exit(timeout=30) == 1
    output = server.output()
    assert "restart_workers=False" in output and "Traceback" not in output
    wait_for(lambda: not any(alive(pid) for pid in group), timeout=10, message="every server process to exit")


# --- admission control -----------------------------------------------------------------------------


def test_requests_past_max_queue_size_get_503_with_retry_after(serve, tmp_path):
    server = serve("tests.apps:GatedAPI", api_kwargs={"gate_dir": str(tmp_path)}, max_queue_size=2)
    url = f"{server.url}/predict"
    running = Background(url, {"id": "a", "block": True})
    wait_for(lambda: (tmp_path / "started-a").exists(), timeout=10, message="request a to run")
    queued = [Background(url, {"id": name, "block": True}) for name in ("b", "c")]
    wait_for(lambda: gauge(server.url, "litserve_queue_depth") == 2, timeout=10, message="two queued requests")

    started = time.monotonic()
    rejected = httpx.post(url, json={"id": "d"})
    assert time.monotonic() - started < 1.0
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "1"
    assert "max_queue_size" in rejected.json()["detail"]

    for name in ("a", "b", "c"):
        (tmp_path / f"release-{name}").touch()
    assert [r.join(timeout=30).json() for r in [running, *queued]] == [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    assert not (tmp_path / "started-d").exists()
    assert httpx.post(url, json={"id": "e"}).json() == {"id": "e"}


def test_ten_times_overload_is_shed_fast_and_the_queue_stays_bounded(serve):
    # One worker serves ~10 requests/s; 40 clients that resend at once offer far more than 10x that.
    server = serve("tests.apps:SleepAPI", max_queue_size=4, timeout=60)
    url = f"{server.url}/predict"
    rss_before = rss_kb(server.process.pid)
    body = {"sleep": 0.1, "padding": "x" * 32_000}
    stop_at = time.monotonic() + 4.0
    samples: Dict[str, List[float]] = {"ok": [], "busy": [], "other": []}
    depth_seen: List[float] = []

    def client(_: int) -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < stop_at:
                sent = time.monotonic()
                response = http.post(url, json=body)
                kind = {200: "ok", 503: "busy"}.get(response.status_code, "other")
                if kind == "busy":
                    assert response.headers["retry-after"] == "1"
                samples[kind].append(time.monotonic() - sent)

    def watch_depth() -> None:
        while time.monotonic() < stop_at:
            depth_seen.append(gauge(server.url, "litserve_queue_depth"))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_depth)
    watcher.start()
    with ThreadPoolExecutor(40) as pool:
        list(pool.map(client, range(40)))
    watcher.join()

    assert not samples["other"]
    assert len(samples["busy"]) > 10 * len(samples["ok"]) > 0
    assert max(depth_seen) <= 4
    # Accepted requests wait behind at most 4 others; rejected ones are answered without waiting.
    assert max(samples["ok"]) < 2.5
    assert sorted(samples["busy"])[len(samples["busy"]) // 2] < 0.1
    assert rss_kb(server.process.pid) - rss_before < 50_000
    wait_for(lambda: gauge(server.url, "litserve_requests_in_flight") == 0, timeout=10, message="the queue to drain")
    assert httpx.post(url, json={"sleep": 0}).status_code == 200


# --- graceful shutdown -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_api_servers", [1, 2])
def test_sigterm_lets_the_running_request_finish_then_exits_0(serve, tmp_path, num_api_servers):
    server = serve(
        "tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, run_kwargs={"num_api_servers": num_api_servers}
    )
    group = session_pids(server.process.pid)
    running = Background(f"{server.url}/predict", {"id": "r", "sleep": 2})
    wait_for(lambda: (tmp_path / "started-r").exists(), timeout=10, message="the request to run")

    os.kill(server.process.pid, signal.SIGTERM)
    # No longer ready (or no longer accepting at all) while the request finishes.
    wait_for(lambda: health(server.url) != 200, timeout=5, message="readiness to go away")
    assert running.finished_at is None
    response = running.join(timeout=30)
    assert response.status_code == 200 and "pid" in response.json()
    assert server.wait_exit(timeout=30) == 0
    assert "Traceback" not in server.output()
    wait_for(lambda: not any(alive(pid) for pid in group), timeout=10, message="every server process to exit")


def test_sigterm_after_a_worker_restart_stops_everything_cleanly(serve, tmp_path):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, workers_per_device=2)
    url = f"{server.url}/predict"
    first = httpx.post(url, json={}).json()["pid"]
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: "restarting" in server.output(), timeout=10, message="the restart")
    server.wait_ready()
    group = session_pids(server.process.pid)
    running = Background(url, {"id": "r", "sleep": 1})
    wait_for(lambda: (tmp_path / "started-r").exists(), timeout=10, message="the request to run")

    os.kill(server.process.pid, signal.SIGTERM)
    assert running.join(timeout=30).status_code == 200
    assert server.wait_exit(timeout=30) == 0
    output = server.output()
    assert "Traceback" not in output, output
    assert output.count("(restart ") == 1, output
    wait_for(lambda: not any(alive(pid) for pid in group), timeout=10, message="every server process to exit")


def test_sigterm_lets_a_stream_finish(serve, tmp_path):
    server = serve("tests.apps:StreamAPI", api_kwargs={"gate_dir": str(tmp_path)}, stream=True)
    lines: List[dict] = []

    def read_stream() -> None:
        with httpx.stream("POST", f"{server.url}/predict", json={"n": 3}, timeout=30) as response:
            lines.extend(json.loads(line) for line in response.iter_lines() if line)

    reader = threading.Thread(target=read_stream)
    reader.start()
    wait_for(lambda: (tmp_path / "produced-0").exists(), timeout=10, message="the first item")
    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(lambda: health(server.url) != 200, timeout=5, message="shutdown to begin")
    (tmp_path / "go-1").touch()
    (tmp_path / "go-2").touch()
    reader.join(timeout=30)
    assert lines == [{"output": 0}, {"output": 1}, {"output": 2}]
    assert server.wait_exit(timeout=30) == 0


def test_shutdown_timeout_bounds_the_wait_for_a_stuck_request(serve, tmp_path):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, shutdown_timeout=1)
    stuck = Background(f"{server.url}/predict", {"id": "s", "sleep": 120})
    wait_for(lambda: (tmp_path / "started-s").exists(), timeout=10, message="the request to run")

    signalled_at = time.monotonic()
    os.kill(server.process.pid, signal.SIGTERM)
    response = stuck.join(timeout=20)
    assert response.status_code == 503
    assert "shutting down" in response.json()["detail"]
    assert 0.8 < stuck.finished_at - signalled_at < 5
    assert server.wait_exit(timeout=20) == 0
    assert time.monotonic() - signalled_at < 15


@pytest.mark.parametrize("num_api_servers", [1, 2])
def test_nothing_outlives_a_sigkilled_main_process(serve, tmp_path, num_api_servers):
    server = serve(
        ["tests.apps:CrashAPI", "tests.apps:SquareAPI"],
        api_kwargs=[{"gate_dir": str(tmp_path), "api_path": "/busy"}, {"api_path": "/idle"}],
        run_kwargs={"num_api_servers": num_api_servers},
    )
    # A worker in the middle of a long predict, and an idle one.
    busy = Background(f"{server.url}/busy", {"id": "b", "sleep": 120})
    wait_for(lambda: (tmp_path / "started-b").exists(), timeout=10, message="the busy request to run")
    group = [pid for pid in session_pids(server.process.pid) if pid != server.process.pid]
    assert len(group) >= 2 + num_api_servers - 1, group  # the two workers, and API servers beyond the first

    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    wait_for(lambda: not any(alive(pid) for pid in group), timeout=10, message="every process of the server to exit")
    # Its client hears of it: the connection drops with the API server, or an orphaned API server answers 503.
    busy.wait(timeout=10)
    assert isinstance(busy.error, httpx.TransportError) or busy.response.status_code == 503


def test_liveness_answers_while_workers_are_not_ready(serve, tmp_path):
    server = serve("tests.apps:SlowSetupAPI", api_kwargs={"gate_dir": str(tmp_path)}, wait=False)
    wait_for(lambda: health(server.url) == 503, timeout=30, message="the server to answer")
    live = httpx.get(f"{server.url}/livez")
    assert live.status_code == 200 and live.text == "alive"
    (tmp_path / "setup-go").touch()
    wait_for(lambda: health(server.url) == 200, timeout=30, message="readiness")
    assert httpx.get(f"{server.url}/livez").status_code == 200


# --- request bodies --------------------------------------------------------------------------------


def test_max_payload_size_rejects_large_bodies_by_content_length(serve):
    server = serve("tests.apps:SquareAPI", max_payload_size=1000)
    url = f"{server.url}/predict"
    too_large = httpx.post(url, json={"input": 1, "padding": "x" * 2000})
    assert too_large.status_code == 413
    assert "1000 bytes" in too_large.json()["detail"]
    assert httpx.post(url, json={"input": 3}).json() == {"output": 9}


def test_max_payload_size_stops_a_chunked_upload_without_holding_it(serve):
    server = serve("tests.apps:SquareAPI", max_payload_size="1MB")
    url = f"{server.url}/predict"
    peak_before = rss_kb(server.process.pid, "VmHWM")
    chunk = b" " * 65536

    def body():  # 128 MB, chunked (no Content-Length)
        yield b'{"input": 1, "padding": "'
        for _ in range(2048):
            yield chunk
        yield b'"}'

    response = httpx.post(url, content=body(), headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413
    assert rss_kb(server.process.pid, "VmHWM") - peak_before < 32_000, "the server held the body in memory"

    def small():
        yield b'{"input": '
        yield b"3}"

    ok = httpx.post(url, content=small(), headers={"content-type": "application/json"})
    assert ok.status_code == 200 and ok.json() == {"output": 9}


def test_max_payload_size_stops_a_chunked_multipart_upload(serve):
    server = serve("tests.apps:FormAPI", max_payload_size="1MB")
    url = f"{server.url}/predict"
    peak_before = rss_kb(server.process.pid, "VmHWM")
    boundary = "litserve-test-boundary"
    chunk = b"\0" * 65536

    def body():  # a 64 MB file part, chunked (no Content-Length)
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'.encode()
        yield b"Content-Type: application/octet-stream\r\n\r\n"
        for _ in range(1024):
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = httpx.post(url, content=body(), headers=headers, timeout=60)
    assert response.status_code == 413
    assert rss_kb(server.process.pid, "VmHWM") - peak_before < 32_000, "the server held the upload in memory"

    broken = httpx.post(url, content=b"no parts here", headers=headers)
    assert broken.status_code == 400 and "form" in broken.json()["detail"]
    ok = httpx.post(url, files={"file": ("a.txt", b"abc", "text/plain")}, data={"label": "a"})
    assert ok.status_code == 200 and ok.json() == {"name": "a.txt", "size": 3, "label": "a"}


def _raw_request(port: int, data: bytes, half_close: bool = False, read: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        if not read:
            return b""
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            received += chunk
            if b"\r\n\r\n" in received:
                head, _, rest = received.partition(b"\r\n\r\n")
                length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= int(length[0].split(b":")[1]):
                    break
        return received


def test_a_client_that_closes_mid_body_is_forgotten(serve, tmp_path):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)})
    head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    # Closes the connection after part of the body...
    _raw_request(server.port, head + b'{"id": "cut1", "sle', read=False)
    # ... or stops sending and waits: the server must neither run it nor hang on it forever.
    answer = _raw_request(server.port, head + b'{"id": "cut2", "sle', half_close=True)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    assert httpx.post(f"{server.url}/predict", json={"id": "whole"}).status_code == 200
    assert (tmp_path / "started-whole").exists()
    assert not (tmp_path / "started-cut1").exists() and not (tmp_path / "started-cut2").exists()


def test_any_body_a_client_can_send_gets_4xx_and_the_server_keeps_serving(serve):
    server = serve("tests.apps:PydanticAPI")
    url = f"{server.url}/predict"
    json_type = {"content-type": "application/json"}
    bodies = [
        b"",
        b"{",
        b'{"input": 4',
        b'{"input": "\xff\xfe"}',
        b"\xff" * 100,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"input": ' * 50_000 + b"1" + b"}" * 50_000,
        b'{"input": 1' + b"0" * 100_000 + b"}",
        b"null",
        b"[]",
        b'"just a string"',
        b"12",
        b'{"input": {"nested": [1, 2, {"x": null}]}}',
        b"\x00\x01\x02",
    ]
    for body in bodies:
        response = httpx.post(url, content=body, headers=json_type)
        assert 400 <= response.status_code < 500, (body[:40], response.status_code, response.text[:200])
        assert response.json()["detail"]
    for content_type in ["text/plain", "application/xml", "image/png", "multipart/form-data; boundary=x"]:
        response = httpx.post(url, content=b'{"input": 1}', headers={"content-type": content_type})
        assert 400 <= response.status_code < 500, (content_type, response.status_code)
    assert httpx.post(url, content=b'{"input": 1e999}', headers=json_type).status_code == 200  # a valid infinity
    # HTTP-level garbage: a malformed chunk size.
    answer = _raw_request(
        server.port, b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n{}\r\n0\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 400")
    assert httpx.post(url, json={"input": 3}).json() == {"output": 9.0}
