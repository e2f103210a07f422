"""With LIT_SERVER_API_KEY set, every route the app serves needs the key, except liveness and readiness."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List, Tuple

import httpx
from starlette.routing import Mount

from tests.apps_auth import build_server

KEY = "Key-0f-Mixed-Case"
OPEN_PATHS = {"/health", "/livez"}
SCRIPT = Path(__file__).resolve().parent.parent / "apps_auth.py"


def served_routes(routes, prefix: str = "") -> List[Tuple[str, str]]:
    """(method, path) of every route, mounted apps included, with path parameters filled in."""
    found = []
    for route in routes:
        path = prefix + re.sub(r"{[^}]+}", "some-id", route.path)
        if isinstance(route, Mount):
            found += served_routes(route.routes, path)
        else:
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method != "HEAD":
                    found.append((method, path or "/"))
    return found


def test_every_route_but_liveness_and_readiness_answers_401_without_the_key(serve_script):
    server = serve_script(SCRIPT, env={"LIT_SERVER_API_KEY": KEY})
    routes = served_routes(build_server().app.routes)
    paths = {path for _, path in routes}
    # The enumeration sees every kind of route, those added after the server was built included.
    expected = {"/square", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/some-id", "/metrics"}
    expected |= {
        "/info",
        "/openapi.json",
        "/docs",
        "/redoc",
        "/custom",
        "/ws",
        "/mounted/",
        "/mounted/deep",
    } | OPEN_PATHS
    assert expected <= paths
    routes.append(("GET", "/no-such-route"))

    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path in routes:
            if path in OPEN_PATHS:
                assert client.request(method, path).status_code == 200, path
                continue
            if path == "/authorized":
                continue  # its LitAPI's own ``authorize`` decides: checked below
            assert client.request(method, path).status_code == 401, f"{method} {path} without a key"
            for wrong in (KEY.lower(), KEY.upper(), KEY[:-1], KEY + "x", ""):
                answer = client.request(method, path, headers={"X-API-Key": wrong})
                assert answer.status_code == 401, f"{method} {path} with {wrong!r}"
            for good in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
                assert client.request(method, path, headers=good).status_code != 401, f"{method} {path} with the key"

        assert client.get("/no-such-route", headers={"X-API-Key": KEY}).status_code == 404
        assert "API key" in client.get("/v1/models").json()["error"]["message"], "OpenAI routes keep their shape"
        assert client.get("/v1/models", headers={"X-API-Key": KEY}).json()["data"]
        assert client.get("/mounted/deep", headers={"X-API-Key": KEY}).text == "mounted"
        square = client.post("/square", json={"input": 3}, headers={"X-API-Key": KEY})
        assert square.json() == {"output": 9}
        # A LitAPI with ``authorize`` keeps LitServe's behaviour: its hook replaces the key check.
        assert client.post("/authorized", json={"input": 3}, headers={"X-API-Key": KEY}).status_code in (401, 403)
        allowed = client.post("/authorized", json={"input": 3}, headers={"Authorization": "Bearer letmein"})
        assert allowed.json() == {"output": 9}

    assert_websocket_needs_the_key_and_outlives_the_header_timeout(server.url)
    assert KEY not in server.output() and KEY.lower() not in server.output(), "an API key reached the logs"


def assert_websocket_needs_the_key_and_outlives_the_header_timeout(url: str) -> None:
    import pytest
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus):
        with connect(ws_url, open_timeout=10):
            pass
    with connect(ws_url, additional_headers={"X-API-Key": KEY}, open_timeout=10) as websocket:
        websocket.send("before")
        assert websocket.recv(timeout=10) == "before"
        time.sleep(1.5)  # longer than the server's header timeout: a websocket is no request still arriving
        websocket.send("after")
        assert websocket.recv(timeout=10) == "after"
