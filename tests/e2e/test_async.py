"""enable_async=True against a real server: async hooks of many requests overlap in one worker."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.test_metrics import scrape


def test_async_predicts_of_concurrent_requests_run_together_in_one_worker(serve):
    server = serve("tests.apps_admin:OverlapAPI", api_kwargs={"peak": 8}, accelerator="cpu")
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda i: httpx.post(f"{server.url}/predict", json={"i": i}, timeout=60), range(8)))
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    assert sorted(r.json()["echo"]["i"] for r in responses) == list(range(8))
    assert all(r.json()["peak"] == 8 for r in responses)


def test_async_batches_run_together(serve):
    server = serve(
        "tests.apps_admin:OverlapAPI",
        api_kwargs={"peak": 2, "max_batch_size": 2, "batch_timeout": 0.05},
        accelerator="cpu",
    )

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda i: httpx.post(f"{server.url}/predict", json={"i": i}, timeout=60), range(6)))
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    # The default unbatch splits the batch (a list of requests) back into one output per request.
    assert sorted(r.json()["echo"]["i"] for r in responses) == list(range(6))


def test_async_generators_stream_concurrently(serve):
    server = serve("tests.apps_admin:OverlapStreamAPI", api_kwargs={"peak": 4}, accelerator="cpu")

    def stream(i):
        with httpx.stream("POST", f"{server.url}/predict", json={"name": str(i)}, timeout=60) as response:
            return response.status_code, [json.loads(line) for line in response.iter_lines() if line]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(stream, range(4)))
    assert results == [(200, [{"i": 0}, {"i": 1}, {"i": 2}])] * 4


@pytest.mark.parametrize("api", ["OverlapAPI", "OverlapStreamAPI"])
def test_a_client_that_leaves_cancels_only_its_own_request(serve, tmp_path, api):
    server = serve(f"tests.apps_admin:{api}", api_kwargs={"peak": 1, "cancel_dir": str(tmp_path)}, accelerator="cpu")
    with pytest.raises(httpx.TimeoutException):
        with httpx.stream("POST", f"{server.url}/predict", json={"name": "left", "hang": True}, timeout=1) as r:
            r.read()
    wait_for(lambda: (tmp_path / "cancelled-left").exists(), timeout=20, message="the hanging request's cancellation")
    response = httpx.post(f"{server.url}/predict", json={"name": "stays"}, timeout=30)
    assert response.status_code == 200
    assert not (tmp_path / "cancelled-stays").exists()


def test_a_timed_out_request_is_cancelled_in_the_worker(serve, tmp_path):
    server = serve(
        "tests.apps_admin:OverlapAPI", api_kwargs={"peak": 1, "cancel_dir": str(tmp_path)}, accelerator="cpu", timeout=1
    )
    response = httpx.post(f"{server.url}/predict", json={"name": "slow", "hang": True}, timeout=30)
    assert response.status_code == 504
    wait_for(lambda: (tmp_path / "cancelled-slow").exists(), timeout=20, message="the timed-out request's cancellation")
    assert httpx.post(f"{server.url}/predict", json={"name": "next"}, timeout=30).status_code == 200


def test_async_openai_chats_run_together_streamed_or_not(serve):
    from openai import OpenAI

    server = serve("tests.apps_admin:OverlapChatAPI", api_kwargs={"peak": 4}, accelerator="cpu")
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=60)
    messages = [{"role": "user", "content": "hi"}]

    def chat(i):
        if i % 2:
            stream = client.chat.completions.create(model="m", messages=messages, stream=True)
            return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        return client.chat.completions.create(model="m", messages=messages).choices[0].message.content

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(chat, range(4))) == ["hello world"] * 4


def test_a_chat_arriving_while_another_blocks_the_event_loop_starts_before_that_one_ends(serve):
    # The running chat's hooks block the worker's event loop between tokens (80 x 50 ms); the second chat
    # arrives during such a block. It must start at the next token boundary, not when the first one ends.
    server = serve("tests.apps_admin:BlockingChatAPI", api_kwargs={"tokens": 80, "block_s": 0.05}, accelerator="cpu")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    url = f"{server.url}/v1/chat/completions"
    with httpx.Client(timeout=60) as first_client, httpx.Client(timeout=60) as second_client:
        with first_client.stream("POST", url, json=body) as first:
            first_events = (line for line in first.iter_lines() if line.startswith("data:"))
            for _ in range(5):  # the first chat is generating
                next(first_events)
            sent = time.monotonic()
            with second_client.stream("POST", url, json=body) as second:
                second_events = (line for line in second.iter_lines() if line.startswith("data:"))
                next(second_events)
                waited = time.monotonic() - sent
                assert list(second_events)[-1] == "data: [DONE]"
            assert list(first_events)[-1] == "data: [DONE]"
    # About 3.8 s of the first chat were left: its end is not what started the second one.
    assert waited < 1.5, f"the second chat's first event came {waited:.2f} s after it was sent"


def test_requests_an_async_worker_runs_together_are_not_counted_as_queued(serve):
    # One worker runs all six sleeping requests at once: none of them waits, so none may be refused by
    # max_queue_size, and /metrics reports them running rather than queued.
    server = serve(
        "tests.apps_admin:AsyncSleepAPI", api_kwargs={"delay": 3.0}, accelerator="cpu", max_queue_size=2, timeout=60
    )
    with ThreadPoolExecutor(6) as pool:
        replies = [pool.submit(httpx.post, f"{server.url}/predict", json={"input": i}, timeout=60) for i in range(6)]
        wait_for(
            lambda: scrape(server.url).value("litserve_requests_in_flight", path="/predict") == 6,
            timeout=10,
            message="six requests in flight",
        )
        metrics = scrape(server.url)
        assert metrics.value("litserve_requests_running", path="/predict") == 6
        assert metrics.value("litserve_queue_depth", path="/predict") == 0
        responses = [reply.result() for reply in replies]
    assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
    assert len({r.json()["pid"] for r in responses}) == 1
