"""LitServe's ``middlewares``, ``configure_logging`` and ``wrap_litserve_start``, used as LitServe users use them."""

from __future__ import annotations

import textwrap
from concurrent.futures import ThreadPoolExecutor

import httpx
from fastapi.testclient import TestClient

import litserve as ls
from litserve.utils import wrap_litserve_start
from tests.conftest import wait_for


def write_script(tmp_path, body: str):
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent(body))
    return script


def test_max_size_middleware_refuses_large_bodies_in_each_routes_error_shape(serve_script, tmp_path):
    script = write_script(
        tmp_path,
        """
        import os

        import litserve as ls
        from litserve.middlewares import MaxSizeMiddleware
        from litserve.test_examples.openai_spec_example import TestAPI
        from tests.apps import SquareAPI

        if __name__ == "__main__":
            apis = [SquareAPI(), TestAPI(spec=ls.OpenAISpec())]
            server = ls.LitServer(apis, middlewares=[(MaxSizeMiddleware, {"max_size": 200})])
            server.run(port=int(os.environ["PORT"]), host="127.0.0.1", generate_client_file=False)
        """,
    )
    server = serve_script(script)
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9}
    padded = {"input": 3, "padding": "x" * 300}
    declared = httpx.post(f"{server.url}/predict", json=padded)
    assert declared.status_code == 413
    assert "200 bytes" in declared.json()["detail"]

    def chunks():  # no Content-Length: refused once the body passes the limit
        yield b'{"input": 3, "padding": "'
        for _ in range(10):
            yield b"x" * 50
        yield b'"}'

    chunked = httpx.post(f"{server.url}/predict", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    messages = [{"role": "user", "content": "x" * 300}]
    chat = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "m", "messages": messages})
    assert chat.status_code == 413
    assert set(chat.json()["error"]) == {"message", "type", "param", "code"}
    short = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert short.status_code == 200


def test_request_count_middleware_counts_the_requests_being_answered(serve_script, tmp_path):
    script = write_script(
        tmp_path,
        f"""
        import multiprocessing
        import os

        import litserve as ls
        from litserve.middlewares import RequestCountMiddleware
        from tests.apps import GatedAPI

        if __name__ == "__main__":
            active = multiprocessing.Value("i", 0)
            api = GatedAPI({str(tmp_path)!r})
            server = ls.LitServer(api, middlewares=[(RequestCountMiddleware, {{"active_counter": active}})])
            server.app.add_api_route("/active", lambda: {{"active": active.value}})
            server.run(port=int(os.environ["PORT"]), host="127.0.0.1", generate_client_file=False)
        """,
    )
    server = serve_script(script)

    def active() -> int:
        return httpx.get(f"{server.url}/active").json()["active"]  # counts itself

    assert active() == 1
    with ThreadPoolExecutor(2) as pool:
        held = [
            pool.submit(httpx.post, f"{server.url}/predict", json={"id": i, "block": True}, timeout=30) for i in (1, 2)
        ]
        wait_for(lambda: active() == 3, timeout=20, message="two held requests counted")
        httpx.get(f"{server.url}/health")  # not counted
        for i in (1, 2):
            (tmp_path / f"release-{i}").touch()
        assert [future.result().json() for future in held] == [{"id": 1}, {"id": 2}]
    wait_for(lambda: active() == 1, timeout=10, message="the count to go back down")


def test_configure_logging_sets_the_level_and_format_in_the_workers_too(serve_script, tmp_path):
    script = write_script(
        tmp_path,
        """
        import logging
        import os

        import litserve as ls

        log = logging.getLogger("litserve.user_api")


        class LoggingAPI(ls.LitAPI):
            def predict(self, x):
                log.debug("predicting %s", x)
                return x


        if __name__ == "__main__":
            ls.configure_logging("debug", format="CONFIGURED %(levelname)s [%(processName)s] %(message)s")
            server = ls.LitServer(LoggingAPI())
            server.run(port=int(os.environ["PORT"]), host="127.0.0.1", generate_client_file=False)
        """,
    )
    server = serve_script(script)
    assert httpx.post(f"{server.url}/predict", json={"n": 5}).json() == {"n": 5}
    wait_for(lambda: "predicting" in server.output(), timeout=10, message="the worker's debug line")
    output = server.output()
    assert "CONFIGURED DEBUG [litserve-worker-0] predicting {'n': 5}" in output
    assert "CONFIGURED INFO [MainProcess] ready: 1 worker" in output


def test_wrap_litserve_start_serves_server_app_through_a_test_client():
    class HeaderMiddleware:
        def __init__(self, app, value: str) -> None:
            self.app = app
            self.value = value.encode()

        async def __call__(self, scope, receive, send):
            async def send_with_header(message):
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", []), (b"x-request-id", self.value)]
                await send(message)

            await self.app(scope, receive, send_with_header)

    server = ls.LitServer(
        ls.test_examples.SimpleLitAPI(), accelerator="cpu", middlewares=[(HeaderMiddleware, {"value": "00000"})]
    )
    with wrap_litserve_start(server) as started, TestClient(started.app) as client:
        response = client.post("/predict", json={"input": 4.0})
        assert response.json() == {"output": 16.0}
        assert response.headers["x-request-id"] == "00000"
        assert client.get("/health").text == "ok"
        bad = client.post("/predict", content=b"{oops", headers={"content-type": "application/json"})
        assert bad.status_code == 400
    assert [m.cls for m in server.app.user_middleware] == [], "server.app is left as it was"
