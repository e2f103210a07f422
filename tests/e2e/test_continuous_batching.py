"""ContinuousBatchingLoop against a real server: requests join between steps and stream on their own."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import litserve as ls
from litserve.loops import ContinuousBatchingLoop, Output
from litserve.utils import LitAPIStatus
from tests.conftest import wait_for

API = "tests.apps_continuous:CountingGenerator"


def lines(response: httpx.Response) -> list:
    return [json.loads(line)["item"] for line in response.text.splitlines() if line]


def test_each_request_streams_its_own_items_in_order(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})

    def generate(index: int) -> list:
        body = {"prefix": f"r{index}", "n": 3 + index}
        return lines(httpx.post(f"{server.url}/predict", json=body, timeout=30))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(generate, range(8)))
    for index, items in enumerate(results):
        assert [item["prefix"] for item in items] == [f"r{index}"] * (3 + index)
        assert [item["i"] for item in items] == list(range(3 + index))


def test_the_finish_output_ends_the_stream_and_its_payload_is_not_sent(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    url = f"{server.url}/predict"
    for body in ({"prefix": "same", "n": 2}, {"prefix": "next", "n": 2, "finish_next_step": True}):
        response = httpx.post(url, json=body, timeout=30)
        assert response.status_code == 200
        assert response.text.count("\n") == 2, f"exactly the two items, no item for the FINISH output: {response.text}"
        assert [item["i"] for item in lines(response)] == [0, 1]
    nothing = httpx.post(url, json={"prefix": "none", "n": 0}, timeout=30)
    assert (nothing.status_code, nothing.text) == (200, "")


def test_a_request_joins_and_finishes_while_another_is_still_running(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{server.url}/predict", json={"prefix": "long", "n": 3, "hold": "go"}) as long:
            assert long.headers["content-type"] == "application/x-ndjson"
            stream = long.iter_lines()
            first = json.loads(next(stream))["item"]
            assert first == {"prefix": "long", "i": 0, "step": first["step"], "running": 1}
            # The long request is held mid-generation; a new one still starts and completes at once.
            short = lines(client.post(f"{server.url}/predict", json={"prefix": "short", "n": 2}))
            assert [item["i"] for item in short] == [0, 1]
            assert all(item["running"] == 2 for item in short)  # the long one was in the running set
            (tmp_path / "go").touch()
            rest = [json.loads(line)["item"] for line in stream if line]
    assert [item["i"] for item in rest] == [1, 2]
    assert rest[0]["step"] > short[-1]["step"]


def test_an_error_ends_only_that_request(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    with ThreadPoolExecutor(3) as pool:
        failing_late = pool.submit(httpx.post, f"{server.url}/predict", json={"prefix": "f", "n": 5, "fail_at": 2})
        failing_early = pool.submit(
            httpx.post, f"{server.url}/predict", json={"prefix": "e", "n": 5, "fail_at": 0, "fail_status": 418}
        )
        healthy = pool.submit(httpx.post, f"{server.url}/predict", json={"prefix": "ok", "n": 6})
        late, early, ok = failing_late.result(), failing_early.result(), healthy.result()
    # Started streams end early; one that never started gets the error's status and message.
    assert [item["i"] for item in lines(late)] == [0, 1]
    assert early.status_code == 418
    assert early.json() == {"detail": "refused by the toy API"}
    assert [item["i"] for item in lines(ok)] == list(range(6))
    assert "Traceback" not in late.text


def test_add_request_errors_are_answered_with_their_status(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    response = httpx.post(f"{server.url}/predict", json={"prefix": "x", "n": "three"})
    assert response.status_code == 422
    assert response.json() == {"detail": "n must be an integer"}
    assert lines(httpx.post(f"{server.url}/predict", json={"prefix": "x", "n": 1})) == [
        {"prefix": "x", "i": 0, "step": 1, "running": 1}
    ]


def test_a_client_hanging_up_cancels_its_request(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{server.url}/predict", json={"prefix": "gone", "n": 50, "hold": "never"}) as r:
            next(r.iter_lines())
    cancelled = tmp_path / "cancelled"
    wait_for(lambda: cancelled.exists() and cancelled.read_text().count("\n") == 1, timeout=10, message="cancel()")
    # The slot it held is free: the next request runs alone.
    assert lines(httpx.post(f"{server.url}/predict", json={"prefix": "next", "n": 1}))[0]["running"] == 1


def test_a_timed_out_request_is_cancelled(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)}, timeout=1)
    response = httpx.post(f"{server.url}/predict", json={"prefix": "slow", "n": 2, "hold_first": "never"}, timeout=30)
    assert response.status_code == 504
    cancelled = tmp_path / "cancelled"
    wait_for(lambda: cancelled.exists() and cancelled.read_text().count("\n") == 1, timeout=10, message="cancel()")


def test_requests_beyond_capacity_wait_for_a_free_slot(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path), "max_batch_size": 2})

    def generate(index: int) -> list:
        return lines(httpx.post(f"{server.url}/predict", json={"prefix": f"c{index}", "n": 4}, timeout=30))

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(generate, range(6)))
    assert all([item["i"] for item in items] == [0, 1, 2, 3] for items in results)
    assert max(item["running"] for items in results for item in items) <= 2  # itself plus at most one other


def test_sigterm_lets_running_generations_finish(serve, tmp_path):
    server = serve(API, api_kwargs={"gate_dir": str(tmp_path)})
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{server.url}/predict", json={"prefix": "d", "n": 4, "hold": "go"}) as response:
            stream = response.iter_lines()
            assert json.loads(next(stream))["item"]["i"] == 0
            os.kill(server.process.pid, signal.SIGTERM)
            wait_for(lambda: _health(server.url) != 200, timeout=10, message="readiness to go away")
            (tmp_path / "go").touch()
            rest = [json.loads(line)["item"]["i"] for line in stream if line]
    assert rest == [1, 2, 3]
    assert server.wait_exit(timeout=30) == 0
    assert "Traceback" not in server.output()


def _health(url: str) -> int:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code
    except httpx.TransportError:
        return 0


def test_the_loop_needs_stream_and_the_hooks():
    with pytest.raises(ValueError, match="stream=True"):
        ls.LitServer(_NoStream())
    with pytest.raises(ValueError, match="step"):
        ls.LitServer(_NoStep(stream=True, loop=ContinuousBatchingLoop()))


def test_output_and_status_are_litserve_compatible():
    output = Output("uid-1", "token", LitAPIStatus.FINISH_STREAMING)
    assert (output.uid, output.output, output.status) == ("uid-1", "token", "FINISH_STREAMING")
    assert {status.name for status in LitAPIStatus} >= {"OK", "FINISH_STREAMING", "ERROR"}


class _NoStream(ls.LitAPI):
    def __init__(self):
        super().__init__(loop=ContinuousBatchingLoop())

    def add_request(self, uid, request):
        pass

    def step(self, prev_outputs):
        return []


class _NoStep(ls.LitAPI):
    def add_request(self, uid, request):
        pass
