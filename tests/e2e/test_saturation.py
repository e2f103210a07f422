"""Health under saturation, and request bodies a client could use to reach a deserializer."""

from __future__ import annotations

import pickle
import time

import httpx

from tests.conftest import wait_for
from tests.e2e.test_reliability import Background, gauge

# Catches a hang, not a slow answer: the latency figures are in benchmarks/ (health_under_load.py).
ANSWER_BOUND_S = 2.0


def test_health_and_liveness_answer_while_every_worker_is_stuck_and_the_queue_is_full(serve, tmp_path):
    server = serve(
        "tests.apps:CrashAPI",
        api_kwargs={"gate_dir": str(tmp_path)},
        workers_per_device=2,
        devices=1,
        accelerator="cpu",
        max_queue_size=4,
        timeout=120,
        shutdown_timeout=1,
    )
    url = f"{server.url}/predict"
    stuck = [Background(url, {"id": i, "sleep": 60}, timeout=120) for i in range(2 + 4)]
    wait_for(lambda: len(list(tmp_path.glob("started-*"))) == 2, timeout=10, message="both workers to be stuck")
    wait_for(lambda: gauge(server.url, "litserve_requests_in_flight") == 6, timeout=10, message="a full queue")
    refused = httpx.post(url, json={"id": "one-too-many"}, timeout=10)
    assert refused.status_code == 503 and refused.headers["retry-after"]

    latencies = {"/health": [], "/livez": []}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _ in range(50):
            for path, seen in latencies.items():
                started = time.perf_counter()
                status = client.get(path).status_code
                seen.append(time.perf_counter() - started)
                assert status in ((200, 503) if path == "/health" else (200,)), (path, status)
    for path, seen in latencies.items():
        seen.sort()
        print(f"{path}: median {seen[len(seen) // 2] * 1000:.1f} ms, max {seen[-1] * 1000:.1f} ms")
        assert seen[-1] < ANSWER_BOUND_S, path
    assert all(request.finished_at is None for request in stuck), "the stuck requests are still held"


class _Evil:
    def __reduce__(self):
        import os

        return (os.mkdir, ("/tmp/litserve-unpickled-a-request-body",))


def test_a_pickled_body_is_never_unpickled_whatever_its_content_type(serve):
    import os
    import shutil

    marker = "/tmp/litserve-unpickled-a-request-body"
    shutil.rmtree(marker, ignore_errors=True)
    server = serve("tests.apps:SquareAPI")
    payload = pickle.dumps(_Evil())
    for content_type in ("application/x-litserve-form", "application/python-pickle", "application/octet-stream"):
        answer = httpx.post(f"{server.url}/predict", content=payload, headers={"content-type": content_type})
        assert answer.status_code == 400, content_type
    answer = httpx.post(f"{server.url}/predict", content=payload, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert not os.path.exists(marker)
