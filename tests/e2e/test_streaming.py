"""Streaming: items reach the client as they are produced, in the right format, and stop with the client."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import wait_for


@pytest.mark.parametrize("path", ["/stream-predict", "/predict"])
def test_dict_items_stream_as_json_lines(serve, path):
    server = serve("tests.apps:StreamAPI", stream=True)
    with httpx.stream("POST", f"{server.url}{path}", json={"n": 4}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines == [{"output": i} for i in range(4)]


def test_each_item_of_a_fast_stream_is_its_own_http_chunk(serve):
    # Clients commonly read one chunk at a time and parse it as one item (LitServe's own examples do).
    import requests

    server = serve("tests.apps:StreamAPI", stream=True)
    with requests.post(f"{server.url}/predict", json={"n": 2000}, stream=True, timeout=30) as response:
        assert response.status_code == 200
        items = [json.loads(chunk) for chunk in response.iter_content(chunk_size=4000) if chunk]
    assert items == [{"output": i} for i in range(2000)]


def test_string_items_stream_as_they_are(serve):
    server = serve("tests.apps:StreamAPI", api_kwargs={"as_text": True}, stream=True)
    response = httpx.post(f"{server.url}/predict", json={"n": 3})
    assert response.status_code == 200
    assert response.text == "token0 token1 token2 "


def test_each_item_is_flushed_before_the_next_is_produced(serve, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    server = serve("tests.apps:StreamAPI", api_kwargs={"gate_dir": str(gates)}, stream=True)
    with httpx.stream("POST", f"{server.url}/predict", json={"n": 3}, timeout=30) as response:
        lines = response.iter_lines()
        for i in range(3):
            # Item i arrives while item i+1 cannot have been produced yet: its gate is still closed.
            assert json.loads(next(lines)) == {"output": i}
            assert not (gates / f"produced-{i + 1}").exists()
            (gates / f"go-{i + 1}").touch()


def test_client_disconnect_stops_the_generator(serve, tmp_path):
    gates = tmp_path / "gates"
    gates.mkdir()
    server = serve("tests.apps:StreamAPI", api_kwargs={"gate_dir": str(gates)}, stream=True)
    with httpx.stream("POST", f"{server.url}/predict", json={"n": 1000}, timeout=30) as response:
        assert json.loads(next(response.iter_lines())) == {"output": 0}
    # The client is gone. Let the generator produce one more item: it must notice and stop there.
    for i in range(1, 1000):
        (gates / f"go-{i}").touch()
        if (gates / "generator-closed").exists():
            break
        wait_for(
            lambda i=i: (gates / f"produced-{i}").exists() or (gates / "generator-closed").exists(),
            timeout=10,
            message=f"item {i}",
        )
    wait_for(lambda: (gates / "generator-closed").exists(), timeout=10, message="generator to close")
    produced = len(list(gates.glob("produced-*")))
    assert produced < 10, f"generator kept running after the client left ({produced} items)"
    # The worker is free again.
    assert httpx.post(f"{server.url}/predict", json={"n": 2}).status_code == 200


def test_error_before_first_item_gives_500(serve):
    server = serve("tests.apps:StreamAPI", api_kwargs={"fail_at": 0}, stream=True)
    response = httpx.post(f"{server.url}/predict", json={"n": 3})
    assert response.status_code == 500
    assert "Traceback" not in response.text
    assert "RuntimeError" in server.output()


def test_error_mid_stream_ends_the_stream_and_is_logged(serve):
    server = serve("tests.apps:StreamAPI", api_kwargs={"fail_at": 2}, stream=True)
    with httpx.stream("POST", f"{server.url}/predict", json={"n": 5}) as response:
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert lines == [{"output": 0}, {"output": 1}]
    wait_for(lambda: "generation failed" in server.output(), timeout=10, message="error in log")
    assert httpx.post(f"{server.url}/predict", json={"n": 1}).status_code == 200


def test_batched_streaming_gives_each_client_its_own_items(serve):
    from concurrent.futures import ThreadPoolExecutor

    server = serve("tests.apps:BatchedStreamAPI", stream=True, max_batch_size=2, batch_timeout=2.0)

    def run(x: str) -> list:
        response = httpx.post(f"{server.url}/predict", json={"input": x}, timeout=30)
        return [json.loads(line)["output"] for line in response.text.splitlines() if line]

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(run, ["a", "b"])
    assert a == ["a-0", "a-1", "a-2"]
    assert b == ["b-0", "b-1", "b-2"]


def test_stream_true_with_a_plain_predict_is_rejected_at_construction():
    import litserve as ls
    from tests.apps import SquareAPI

    with pytest.raises(ValueError, match="stream=True needs SquareAPI.predict to be a generator"):
        ls.LitServer(SquareAPI(), stream=True)
