"""Errors in user code, API keys and custom authorization."""

from __future__ import annotations

import httpx


def test_exception_in_predict_gives_500_without_leaking_details(serve):
    server = serve("tests.apps:FailingAPI")
    response = httpx.post(f"{server.url}/predict", json={})
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert "predict" in detail and "ValueError" in detail
    assert "secret internal detail" not in response.text
    assert "Traceback" not in response.text
    log = server.output()
    assert "Traceback" in log and "secret internal detail" in log
    # The worker survives its user's exception.
    assert httpx.post(f"{server.url}/predict", json={"http_error": True}).status_code == 418


def test_http_exception_keeps_status_and_detail(serve):
    server = serve("tests.apps:FailingAPI")
    response = httpx.post(f"{server.url}/predict", json={"http_error": True})
    assert response.status_code == 418
    assert response.json() == {"detail": "I'm a teapot"}


def test_api_key_is_required_when_configured(serve):
    server = serve("tests.apps:SquareAPI", env={"LIT_SERVER_API_KEY": "s3cret"})
    url = f"{server.url}/predict"
    assert httpx.post(url, json={"input": 2}).status_code == 401
    wrong = httpx.post(url, json={"input": 2}, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert "X-API-Key" in wrong.json()["detail"]
    right = httpx.post(url, json={"input": 2}, headers={"X-API-Key": "s3cret"})
    assert right.status_code == 200 and right.json() == {"output": 4}
    bearer = httpx.post(url, json={"input": 2}, headers={"Authorization": "Bearer s3cret"})
    assert bearer.status_code == 200
    assert httpx.get(f"{server.url}/health").status_code == 200, "/health stays open"


def test_no_api_key_needed_when_unset(serve):
    server = serve("tests.apps:SquareAPI", env={"LIT_SERVER_API_KEY": ""})
    assert httpx.post(f"{server.url}/predict", json={"input": 2}).status_code == 200


def test_authorize_method_replaces_the_api_key_check(serve):
    server = serve("tests.apps:AuthorizeAPI", env={"LIT_SERVER_API_KEY": "ignored-here"})
    url = f"{server.url}/predict"
    assert httpx.post(url, json={"input": 3}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = httpx.post(url, json={"input": 3}, headers={"Authorization": "Bearer letmein"})
    assert ok.status_code == 200 and ok.json() == {"output": 9}
