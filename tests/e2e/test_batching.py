"""Dynamic batching: requests arriving together are predicted together; failures stay contained."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx


def post_concurrently(url: str, payloads: list) -> list:
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(lambda p: client.post(url, json=p), payloads))


def test_concurrent_requests_are_batched_up_to_max_batch_size(serve):
    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=4, batch_timeout=2.0)
    responses = post_concurrently(f"{server.url}/predict", [{"input": i} for i in range(8)])
    bodies = [r.json() for r in responses]
    assert [b["input"] for b in bodies] == list(range(8)), "each client gets its own answer"
    sizes = [b["batch_size"] for b in bodies]
    assert max(sizes) == 4, sizes
    assert all(size >= 1 for size in sizes)


def test_a_lone_request_waits_at_most_batch_timeout(serve):
    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=16, batch_timeout=0.05)
    response = httpx.post(f"{server.url}/predict", json={"input": 1}, timeout=10)
    assert response.json() == {"input": 1, "batch_size": 1}


def test_litapi_batch_options_win_over_server_options(serve):
    server = serve(
        "tests.apps:BatchRecordingAPI",
        api_kwargs={"max_batch_size": 2, "batch_timeout": 2.0},
        max_batch_size=8,
    )
    responses = post_concurrently(f"{server.url}/predict", [{"input": i} for i in range(4)])
    assert max(r.json()["batch_size"] for r in responses) == 2


def test_default_batch_stacks_tensors_and_unbatch_splits_them(serve):
    server = serve("tests.apps:TorchBatchAPI", max_batch_size=3, batch_timeout=2.0)
    payloads = [{"input": [float(i), 1.0]} for i in range(3)]
    bodies = [r.json() for r in post_concurrently(f"{server.url}/predict", payloads)]
    assert [b["sum"] for b in bodies] == [1.0, 2.0, 3.0]
    assert bodies[0]["batch_shape"] == [3, 2]


def test_failing_decode_fails_only_its_own_request(serve):
    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=3, batch_timeout=2.0)
    payloads = [{"input": 1}, {"input": 2, "fail_decode": True}, {"input": 3}]
    responses = post_concurrently(f"{server.url}/predict", payloads)
    assert [r.status_code for r in responses] == [200, 500, 200]
    assert responses[0].json()["batch_size"] == 2
    assert "decode_request" in responses[1].json()["detail"]


def test_unbatch_returning_the_wrong_count_fails_the_batch_clearly(serve):
    server = serve("tests.apps:WrongUnbatchAPI", max_batch_size=2, batch_timeout=2.0)
    responses = post_concurrently(f"{server.url}/predict", [{"x": 1}, {"x": 2}])
    assert [r.status_code for r in responses] == [500, 500]
    assert "unbatch" in responses[0].json()["detail"]
    assert "unbatch returned 1 outputs for a batch of 2 requests" in server.output()
