"""A request that lacks a key decode_request reads is the client's mistake: 400 naming the key."""

from __future__ import annotations

import httpx

from tests.conftest import wait_for


def test_missing_key_in_a_plain_dict_request_is_a_400_naming_it(serve):
    server = serve("tests.apps_first_hour:LookupAPI")
    assert httpx.post(f"{server.url}/predict", json={"value": 2, "unit": "km"}).json() == {"meters": 2000.0}
    response = httpx.post(f"{server.url}/predict", json={"vaule": 2})
    assert response.status_code == 400
    assert "'value'" in response.json()["detail"]
    assert "Traceback" not in response.text
    wait_for(lambda: "KeyError: 'value'" in server.output(), 10, message="the traceback in the server log")
    assert "Traceback" in server.output()


def test_a_lookup_keyed_by_a_value_the_client_sent_is_not_called_a_missing_field(serve):
    server = serve("tests.apps_first_hour:LookupAPI")
    # The body has every field; the server's own table lacks the unit: the user's hook error, as before.
    response = httpx.post(f"{server.url}/predict", json={"value": 2, "unit": "mile"})
    assert response.status_code == 500
    assert "decode_request" in response.json()["detail"]


def test_missing_key_in_a_batched_api_fails_only_that_request(serve):
    from concurrent.futures import ThreadPoolExecutor

    server = serve("tests.apps:BatchRecordingAPI", max_batch_size=4, batch_timeout=0.5)
    bodies = [{"x": 1}, {"input": 3}, {"input": 4}]
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(3) as pool:
        bad, *good = pool.map(lambda body: client.post(f"{server.url}/predict", json=body), bodies)
    assert bad.status_code == 400 and "'input'" in bad.json()["detail"]
    assert sorted(r.json()["input"] for r in good) == [3, 4]
