"""Timeouts answer 504 whether a request waits or runs; a client that leaves is never served."""

from __future__ import annotations

import threading

import httpx

from tests.conftest import wait_for


def test_running_request_past_timeout_gets_504(serve):
    server = serve("tests.apps:SleepAPI", timeout=0.5)
    response = httpx.post(f"{server.url}/predict", json={"sleep": 3}, timeout=30)
    assert response.status_code == 504
    assert "timed out" in response.json()["detail"]


def test_queued_request_past_timeout_gets_504_and_is_not_run(serve, tmp_path):
    server = serve("tests.apps:GatedAPI", api_kwargs={"gate_dir": str(tmp_path)}, timeout=1)
    blocker = threading.Thread(
        target=lambda: httpx.post(f"{server.url}/predict", json={"id": "a", "block": True}, timeout=30)
    )
    blocker.start()
    wait_for(lambda: (tmp_path / "started-a").exists(), timeout=10, message="request a to start")
    queued = httpx.post(f"{server.url}/predict", json={"id": "b"}, timeout=30)
    assert queued.status_code == 504
    (tmp_path / "release-a").touch()
    blocker.join()
    # The worker moves on to new work and never runs the expired request.
    assert httpx.post(f"{server.url}/predict", json={"id": "c"}).json() == {"id": "c"}
    assert not (tmp_path / "started-b").exists()


def test_timeout_false_lets_long_requests_finish(serve):
    server = serve("tests.apps:SleepAPI", timeout=False)
    response = httpx.post(f"{server.url}/predict", json={"sleep": 1.5}, timeout=30)
    assert response.status_code == 200


def test_queued_request_of_a_disconnected_client_is_pruned(serve, tmp_path):
    server = serve("tests.apps:GatedAPI", api_kwargs={"gate_dir": str(tmp_path)}, timeout=60)
    url = f"{server.url}/predict"
    blocker = threading.Thread(target=lambda: httpx.post(url, json={"id": "a", "block": True}, timeout=60))
    blocker.start()
    wait_for(lambda: (tmp_path / "started-a").exists(), timeout=10, message="request a to start")

    # Client b sends its request, then gives up while it is queued behind a.
    try:
        httpx.post(url, json={"id": "b"}, timeout=0.5)
    except httpx.TimeoutException:
        pass
    (tmp_path / "release-a").touch()
    blocker.join()
    assert httpx.post(url, json={"id": "c"}).json() == {"id": "c"}
    assert not (tmp_path / "started-b").exists(), "a request whose client left was still run"
