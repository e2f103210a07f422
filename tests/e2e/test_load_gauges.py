"""The autoscaling signal at /metrics is exact with several API processes and workers, and after a crash."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Dict, List, Tuple

import httpx

from tests.conftest import wait_for
from tests.e2e.test_metrics import scrape

GAUGES = (
    "litserve_requests_in_flight",
    "litserve_requests_running",
    "litserve_queue_depth",
    "litserve_requests_in_flight_per_worker",
)


def load(url: str) -> Tuple[float, ...]:
    metrics = scrape(url)
    return tuple(metrics.value(name, path="/predict") for name in GAUGES)


def send_held(url: str, names: List[str], answers: Dict[str, int]) -> List[threading.Thread]:
    def send(name: str) -> None:
        # A new connection per request: the requests spread over the API processes.
        answers[name] = httpx.post(f"{url}/predict", json={"id": name}, timeout=90).status_code

    threads = [threading.Thread(target=send, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    return threads


def started(gate: Path) -> List[str]:
    return sorted(path.name[len("started-") :] for path in gate.glob("started-*"))


def test_gauges_are_exact_with_two_api_processes_and_two_workers(serve, tmp_path):
    server = serve(
        "tests.apps_load:HeldAPI",
        api_kwargs={"gate_dir": str(tmp_path)},
        workers_per_device=2,
        timeout=90,
        run_kwargs={"num_api_servers": 2},
    )
    assert load(server.url) == (0, 0, 0, 0)
    answers: Dict[str, int] = {}
    names = [f"r{i}" for i in range(6)]
    threads = send_held(server.url, names, answers)
    wait_for(lambda: len(started(tmp_path)) == 2, timeout=20, message="both workers to run a request")
    # 6 held: 2 running (one per worker), 4 waiting, 3 per worker, whichever API process holds them.
    wait_for(lambda: load(server.url) == (6, 2, 4, 3), timeout=20, message="the exact load")
    for _ in range(10):
        assert load(server.url) == (6, 2, 4, 3)
        assert scrape(server.url).value("litserve_workers", path="/predict") == 2
    for name in names:
        (tmp_path / f"release-{name}").touch()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == {name: 200 for name in names}
    wait_for(lambda: load(server.url) == (0, 0, 0, 0), timeout=15, message="the gauges back to 0")


def test_a_worker_that_dies_mid_request_no_longer_counts_as_running(serve, tmp_path):
    server = serve("tests.apps_load:HeldAPI", api_kwargs={"gate_dir": str(tmp_path), "hold_restarts": True}, timeout=90)
    answers: Dict[str, int] = {}
    threads = send_held(server.url, ["a"], answers)
    wait_for(lambda: started(tmp_path) == ["a"], timeout=20, message="request a to run")
    wait_for(lambda: load(server.url) == (1, 1, 0, 1), timeout=15, message="one request running")
    os.kill(int((tmp_path / "started-a").read_text()), signal.SIGKILL)
    threads[0].join(timeout=30)
    assert answers == {"a": 503}
    # The replacement worker waits in setup (until release-setup): the dead one's request must not linger.
    wait_for(lambda: len(list(tmp_path.glob("setup-*"))) == 1, timeout=5, message="the first setup marker")
    for _ in range(5):
        assert load(server.url) == (0, 0, 0, 0)
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 503
    (tmp_path / "release-setup").touch()
    server.wait_ready(timeout=30)
    (tmp_path / "release-b").touch()
    assert httpx.post(f"{server.url}/predict", json={"id": "b"}, timeout=30).json() == {"id": "b"}
    wait_for(lambda: load(server.url) == (0, 0, 0, 0), timeout=15, message="the gauges back to 0")
