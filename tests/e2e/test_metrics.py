"""Prometheus metrics at GET /metrics, scraped from real servers before and after real traffic."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional, Tuple

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import wait_for

Key = Tuple[str, Tuple[Tuple[str, str], ...]]
JSON = {"content-type": "application/json"}


class Scrape:
    """One parsed ``/metrics`` answer: ``scrape.value("litserve_requests_total", path="/predict", code="200")``."""

    def __init__(self, text: str) -> None:
        self.samples: Dict[Key, float] = {}
        self.types: Dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels`` (0 if there are none)."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.samples.items() if sample == name and wanted <= set(have))

    def codes(self, path: str) -> Dict[str, float]:
        """``litserve_requests_total`` of ``path``, by status code."""
        return {
            dict(labels)["code"]: value
            for (name, labels), value in self.samples.items()
            if name == "litserve_requests_total" and dict(labels)["path"] == path
        }

    def buckets(self, name: str, path: str) -> Dict[str, float]:
        """Cumulative bucket counts of histogram ``name`` for ``path``, by upper bound (``le``)."""
        return {
            dict(labels)["le"]: value
            for (sample, labels), value in self.samples.items()
            if sample == f"{name}_bucket" and dict(labels)["path"] == path
        }


def scrape(url: str, headers: Optional[Dict[str, str]] = None) -> Scrape:
    # A fresh connection each time, so that with several API processes any of them may answer.
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def delta(after: Dict[str, float], before: Dict[str, float]) -> Dict[str, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


def assert_histogram_consistent(metrics: Scrape, name: str, path: str) -> None:
    """Buckets are cumulative and the +Inf bucket equals the count."""
    buckets = metrics.buckets(name, path)
    bounds = sorted(buckets, key=float)
    counts = [buckets[bound] for bound in bounds]
    assert counts == sorted(counts), (name, buckets)
    assert bounds[-1] == "+Inf" and counts[-1] == metrics.value(f"{name}_count", path=path)


# --- counters and histograms -----------------------------------------------------------------------


def test_requests_are_counted_by_path_and_status_code(serve):
    server = serve(
        ["tests.apps:PydanticAPI", "tests.apps:FailingAPI"], api_kwargs=[{}, {"api_path": "/fail"}], timeout=60
    )
    before = scrape(server.url)
    assert before.types["litserve_requests"] == "counter"
    assert before.types["litserve_request_duration_seconds"] == "histogram"
    predict, fail = f"{server.url}/predict", f"{server.url}/fail"

    with httpx.Client(timeout=30) as http:
        for x in range(5):
            assert http.post(predict, json={"input": x}).status_code == 200
        for body in ({"input": "not a number"}, {}, {"other": 1}):
            assert http.post(predict, json=body).status_code == 422
        for raw in (b"{", b"\xff"):
            assert http.post(predict, content=raw, headers=JSON).status_code == 400
        assert http.get(predict).status_code == 405
        for _ in range(4):
            assert http.post(fail, json={}).status_code == 500
        assert http.post(fail, json={"http_error": True}).status_code == 418

    expected = {"/predict": {"200": 5, "422": 3, "400": 2, "405": 1}, "/fail": {"500": 4, "418": 1}}

    def counted() -> Dict[str, Dict[str, float]]:
        after = scrape(server.url)
        return {path: delta(after.codes(path), before.codes(path)) for path in expected}

    wait_for(lambda: counted() == expected, timeout=10, message=f"the counters to read {expected}")
    after = scrape(server.url)
    assert counted() == expected  # and they stay there
    for path, codes in expected.items():
        name = "litserve_request_duration_seconds"
        count = after.value(f"{name}_count", path=path) - before.value(f"{name}_count", path=path)
        assert count == sum(codes.values())
        assert after.value(f"{name}_sum", path=path) > before.value(f"{name}_sum", path=path)
        assert_histogram_consistent(after, name, path)
    # Every request that reached a worker waited in the queue for some (small) time; 405 never got there.
    wait = "litserve_queue_wait_seconds"
    assert after.value(f"{wait}_count", path="/predict") - before.value(f"{wait}_count", path="/predict") == 10
    assert after.value(f"{wait}_count", path="/fail") - before.value(f"{wait}_count", path="/fail") == 5
    assert after.value(f"{wait}_sum", path="/fail") >= 0
    assert_histogram_consistent(after, wait, "/predict")


def test_request_duration_lands_in_the_right_bucket(serve):
    server = serve("tests.apps:SleepAPI", timeout=60)
    before = scrape(server.url)
    assert httpx.post(f"{server.url}/predict", json={"sleep": 0.3}, timeout=30).status_code == 200
    name = "litserve_request_duration_seconds"
    wait_for(lambda: scrape(server.url).value(f"{name}_count", path="/predict") == 1, timeout=10, message="one request")
    after = scrape(server.url)
    buckets = delta(after.buckets(name, "/predict"), before.buckets(name, "/predict"))
    # At least 0.3 s: nothing in the buckets up to 0.25 s, the request in every one from 0.5 s on.
    assert all(float(le) >= 0.5 for le in buckets), buckets
    assert buckets["+Inf"] == 1
    assert 0.3 <= after.value(f"{name}_sum", path="/predict") < 30


def test_batch_size_histogram_reflects_the_batches_predict_saw(serve):
    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=4, batch_timeout=5.0)
    before = scrape(server.url)
    url = f"{server.url}/predict"

    def send(i: int) -> int:
        response = httpx.post(url, json={"input": i}, timeout=60)
        assert response.status_code == 200
        return response.json()["batch_size"]

    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(send, range(8)))

    # Each answer names the size of its batch: a batch of k requests gave k answers that say k.
    batches = Counter({size: count // size for size, count in Counter(sizes).items()})
    assert sum(size * count for size, count in batches.items()) == 8
    assert max(batches) > 1, f"8 concurrent requests with a 5 s batch_timeout were never batched: {sizes}"

    name = "litserve_batch_size"
    wait_for(
        lambda: scrape(server.url).value(f"{name}_sum", path="/predict") - before.value(f"{name}_sum") == 8,
        timeout=10,
        message="the batch sizes to be recorded",
    )
    after = scrape(server.url)
    assert after.value(f"{name}_count", path="/predict") - before.value(f"{name}_count") == sum(batches.values())
    observed = delta(after.buckets(name, "/predict"), before.buckets(name, "/predict"))
    expected = {
        le: sum(count for size, count in batches.items() if size <= float(le)) for le in after.buckets(name, "/predict")
    }
    assert observed == {le: value for le, value in expected.items() if value}
    assert_histogram_consistent(after, name, "/predict")
    # The requests of a batch wait for each other (up to batch_timeout): the waits are recorded per request.
    wait = "litserve_queue_wait_seconds"
    assert after.value(f"{wait}_count", path="/predict") - before.value(f"{wait}_count") == 8
    assert after.value(f"{wait}_sum", path="/predict") > before.value(f"{wait}_sum")


def test_client_that_leaves_before_the_answer_is_counted_as_499(serve, tmp_path):
    server = serve("tests.apps:GatedAPI", api_kwargs={"gate_dir": str(tmp_path)}, timeout=60)
    url = f"{server.url}/predict"
    before = scrape(server.url)
    try:
        httpx.post(url, json={"id": "gone", "block": True}, timeout=httpx.Timeout(60, read=1.0))
    except httpx.ReadTimeout:
        pass
    else:
        raise AssertionError("the blocked request was answered")
    wait_for(
        lambda: delta(scrape(server.url).codes("/predict"), before.codes("/predict")) == {"499": 1},
        timeout=10,
        message="a 499",
    )
    (tmp_path / "release-gone").touch()
    assert httpx.post(url, json={"id": "next"}, timeout=30).json() == {"id": "next"}


# --- gauges ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_api_servers", [1, 2])
def test_gauges_follow_the_load_and_go_back_to_zero_when_idle(serve, tmp_path, num_api_servers):
    server = serve(
        "tests.apps:GatedAPI",
        api_kwargs={"gate_dir": str(tmp_path)},
        timeout=60,
        run_kwargs={"num_api_servers": num_api_servers},
    )
    url = f"{server.url}/predict"
    idle = scrape(server.url)
    assert idle.value("litserve_requests_in_flight") == 0 and idle.value("litserve_queue_depth") == 0
    assert idle.types["litserve_requests_in_flight"] == "gauge"

    answers: Dict[str, int] = {}

    def send(request_id: str) -> None:
        answers[request_id] = httpx.post(url, json={"id": request_id, "block": True}, timeout=60).status_code

    # One request runs in the (single) worker, two wait behind it.
    threads = [threading.Thread(target=send, args=(name,)) for name in ("a", "b", "c")]
    threads[0].start()
    wait_for(lambda: (tmp_path / "started-a").exists(), timeout=10, message="request a to run")
    for thread in threads[1:]:
        thread.start()

    def load() -> Tuple[float, float]:
        metrics = scrape(server.url)
        return metrics.value("litserve_requests_in_flight"), metrics.value("litserve_queue_depth")

    # Exact whichever API process answers: with two, each request may have gone to either of them.
    wait_for(lambda: load() == (3, 2), timeout=15, message="3 requests in flight, 2 of them queued")
    for _ in range(5):
        metrics = scrape(server.url)
        assert (metrics.value("litserve_requests_in_flight"), metrics.value("litserve_queue_depth")) == (3, 2)
        assert metrics.value("litserve_requests_running") == 1
        assert metrics.value("litserve_workers", path="/predict") == 1
        assert metrics.value("litserve_requests_in_flight_per_worker", path="/predict") == 3
    assert (tmp_path / "started-a").exists() and not (tmp_path / "started-b").exists()
    for name in ("a", "b", "c"):
        (tmp_path / f"release-{name}").touch()
    for thread in threads:
        thread.join(timeout=30)
    assert answers == {"a": 200, "b": 200, "c": 200}
    # Whichever API process answers, every process's gauges come back to 0.
    wait_for(lambda: load() == (0, 0), timeout=15, message="the gauges back to 0")
    for _ in range(5):
        assert load() == (0, 0)


# --- several API processes -------------------------------------------------------------------------


def test_totals_are_the_same_whichever_api_process_answers_the_scrape(serve):
    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=4, run_kwargs={"num_api_servers": 2})
    before = scrape(server.url)
    url = f"{server.url}/predict"
    sent = 60

    def send(i: int) -> int:
        # A new connection per request, so the requests spread over both API processes.
        return httpx.post(url, json={"input": i}, timeout=30).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(send, range(sent))) == [200] * sent
    assert httpx.post(url, content=b"{", headers=JSON, timeout=30).status_code == 400

    def counts(metrics: Scrape) -> Dict[str, float]:
        return delta(metrics.codes("/predict"), before.codes("/predict"))

    wait_for(lambda: counts(scrape(server.url)) == {"200": sent, "400": 1}, timeout=10, message="all requests")
    for _ in range(10):
        metrics = scrape(server.url)
        assert counts(metrics) == {"200": sent, "400": 1}
        duration = "litserve_request_duration_seconds_count"
        assert metrics.value(duration, path="/predict") - before.value(duration) == sent + 1
        assert metrics.value("litserve_batch_size_sum") - before.value("litserve_batch_size_sum") == sent + 1
        waits = "litserve_queue_wait_seconds_count"
        assert metrics.value(waits) - before.value(waits) == sent + 1


# --- access ----------------------------------------------------------------------------------------


def test_metrics_need_the_api_key_when_the_server_has_one(serve):
    server = serve("tests.apps:SquareAPI", env={"LIT_SERVER_API_KEY": "s3cret"})
    metrics_url = f"{server.url}/metrics"
    assert httpx.get(metrics_url).status_code == 401
    assert httpx.get(metrics_url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).status_code == 401
    ok = httpx.post(f"{server.url}/predict", json={"input": 3}, headers={"X-API-Key": "s3cret"})
    assert ok.json() == {"output": 9}
    key = {"X-API-Key": "s3cret"}
    wait_for(
        lambda: scrape(server.url, key).codes("/predict") == {"401": 1, "200": 1},
        timeout=10,
        message="the predict requests to be counted",
    )


def test_openmetrics_when_the_scraper_asks_for_it(serve):
    server = serve("tests.apps:SquareAPI")
    assert httpx.post(f"{server.url}/predict", json={"input": 2}).status_code == 200
    response = httpx.get(f"{server.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert "litserve_requests_total" in response.text
