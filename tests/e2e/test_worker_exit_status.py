"""Whether a worker finished setup comes from its ready signal, never from how it exited."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.conftest import start_server, wait_for
from tests.e2e.test_reliability import Background, gauge, health


@pytest.mark.parametrize(
    "crash, description",
    [
        ({"crash": "exit", "code": 3}, "exited with code 3"),
        ({"crash": "exit", "code": 1}, "exited with code 1"),
        ({}, "was killed by SIGKILL"),
    ],
    ids=["status-3", "status-1", "signal"],
)
def test_a_worker_that_dies_after_serving_is_restarted_whatever_its_exit_status(serve, tmp_path, crash, description):
    server = serve("tests.apps:CrashAPI", api_kwargs={"gate_dir": str(tmp_path)}, timeout=120)
    url = f"{server.url}/predict"
    worker = httpx.post(url, json={}).json()["pid"]
    # One request runs (and, for an exit, ends the process from predict as a native library might);
    # another waits behind it on the same worker.
    running = Background(url, {"id": "running", "block": True, **crash})
    wait_for(lambda: (tmp_path / "started-running").exists(), timeout=10, message="the first request to run")
    waiting = Background(url, {"id": "waiting"})
    wait_for(lambda: gauge(server.url, "litserve_requests_in_flight") == 2, timeout=10, message="2 in flight")

    crashed_at = time.monotonic()
    if crash:
        (tmp_path / "release-running").touch()
    else:
        os.kill(worker, signal.SIGKILL)  # from outside, as the OOM killer does
    answers = [running.join(timeout=10), waiting.join(timeout=10)]
    assert [answer.status_code for answer in answers] == [503, 503]
    assert description in answers[0].json()["detail"]

    wait_for(lambda: health(server.url) == 200, timeout=20, message="the worker to be restarted")
    assert time.monotonic() - crashed_at < 20
    after = httpx.post(url, json={})
    assert after.status_code == 200 and after.json()["pid"] != worker
    assert server.process.poll() is None, "the server stopped"
    output = server.output()
    assert "during setup" not in output
    assert description in output and "restarting" in output


@pytest.mark.parametrize("api, said", [("SetupFailsAPI", "weights file missing"), ("SetupExitsAPI", "code 0")])
def test_a_worker_that_never_became_ready_stops_the_server_with_status_1(tmp_path, api, said):
    server = start_server(tmp_path, f"tests.apps:{api}", wait=False)
    try:
        code = server.wait_exit(timeout=60)
    finally:
        server.stop()
    assert code == 1
    output = server.output()
    assert "during setup" in output and said in output
