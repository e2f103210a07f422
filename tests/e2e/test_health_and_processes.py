"""Readiness, setup failures, worker processes, several APIs and API server processes."""

from __future__ import annotations

import time

import httpx

from tests.conftest import start_server, wait_for


def test_health_is_503_until_setup_finishes_and_follows_health_hook(serve, tmp_path):
    server = serve("tests.apps:SlowSetupAPI", api_kwargs={"gate_dir": str(tmp_path)}, run_kwargs={}, wait=False)
    wait_for(lambda: _health(server.url) == 503, timeout=30, message="server to answer 503")
    (tmp_path / "setup-go").touch()
    wait_for(lambda: _health(server.url) == 200, timeout=30, message="health 200 after setup")
    assert httpx.get(f"{server.url}/health").text == "ok"
    (tmp_path / "unhealthy").touch()
    assert _health(server.url) == 503


def test_setup_failure_stops_the_server_with_the_traceback(tmp_path):
    started = time.monotonic()
    server = start_server(tmp_path, "tests.apps:SetupFailsAPI", wait=False)
    try:
        code = server.wait_exit(timeout=60)
    finally:
        server.stop()
    assert code != 0
    output = server.output()
    assert "weights file missing" in output and "Traceback" in output
    assert "during setup" in output
    assert time.monotonic() - started < 60


def test_workers_per_device_starts_separate_processes(serve):
    from concurrent.futures import ThreadPoolExecutor

    server = serve("tests.apps:GatedPidAPI", workers_per_device=2, accelerator="cpu")
    with httpx.Client() as client, ThreadPoolExecutor(4) as pool:
        bodies = list(pool.map(lambda _: client.post(f"{server.url}/predict", json={}).json(), range(8)))
    assert len({b["pid"] for b in bodies}) == 2
    assert {b["device"] for b in bodies} == {"cpu"}


def test_several_apis_on_one_server(serve):
    server = serve(
        ["tests.apps:SquareAPI", "tests.apps:PidAPI"],
        api_kwargs=[{"api_path": "/square"}, {"api_path": "/pid"}],
    )
    assert httpx.post(f"{server.url}/square", json={"input": 3}).json() == {"output": 9}
    assert "pid" in httpx.post(f"{server.url}/pid", json={}).json()
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/square", "/pid"} <= set(paths)


def test_several_api_server_processes_share_the_port(serve):
    server = serve("tests.apps:SquareAPI", run_kwargs={"num_api_servers": 2})
    with httpx.Client() as client:
        outputs = [client.post(f"{server.url}/predict", json={"input": i}).json()["output"] for i in range(20)]
    assert outputs == [i * i for i in range(20)]


def test_context_is_shared_across_hooks(serve):
    server = serve("tests.apps:ContextAPI")
    body = httpx.post(f"{server.url}/predict", json={"input": 5}).json()
    assert body == {"output": 5, "context": {"seen_by_decode": 5, "doubled": 10}}


def test_context_in_a_batch_is_one_dict_per_request(serve):
    from concurrent.futures import ThreadPoolExecutor

    server = serve("tests.apps:BatchedContextAPI", max_batch_size=2, batch_timeout=2.0)
    with ThreadPoolExecutor(2) as pool:
        bodies = list(pool.map(lambda i: httpx.post(f"{server.url}/predict", json={"input": i}).json(), [1, 2]))
    assert [b["context"] for b in bodies] == [
        {"seen_by_decode": 1, "batch_size": 2},
        {"seen_by_decode": 2, "batch_size": 2},
    ]


def test_async_hooks_run_when_enabled(serve):
    server = serve("tests.apps:AsyncAPI")
    assert httpx.post(f"{server.url}/predict", json={"input": 1}).json() == {"output": 2}


def test_ctrl_c_stops_server_and_workers_cleanly(tmp_path):
    import os
    import signal

    server = start_server(tmp_path, "tests.apps:PidAPI")
    worker_pid = httpx.post(f"{server.url}/predict", json={}).json()["pid"]
    os.kill(server.process.pid, signal.SIGINT)
    assert server.wait_exit(timeout=30) == 0
    assert "Traceback" not in server.output()
    wait_for(lambda: not _alive(worker_pid), timeout=10, message="worker to exit")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _health(url: str) -> int:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code
    except httpx.TransportError:
        return 0
