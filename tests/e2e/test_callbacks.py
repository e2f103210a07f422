"""Callbacks against a real server: worker hooks in order, request hooks, server start/end, failures."""

from __future__ import annotations

import os
import re
import signal
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import wait_for

# A server script: every callback event is appended to EVENTS_FILE as "<event> <sorted kwargs>".
SCRIPT_HEAD = textwrap.dedent(
    """
    import os, time
    import litserve as ls

    EVENTS = os.environ["EVENTS_FILE"]

    def record(line):
        with open(EVENTS, "a") as f:
            f.write(line + "\\n")

    class Recorder(ls.Callback):
        pass

    for _name in [
        "on_before_setup", "on_after_setup", "on_before_decode_request", "on_after_decode_request",
        "on_before_predict", "on_after_predict", "on_before_encode_response", "on_after_encode_response",
        "on_server_start", "on_server_end", "on_request", "on_response",
    ]:
        def _hook(self, *args, _name=_name, **kwargs):
            extra = ""
            if "active_requests" in kwargs:
                extra = f" active={kwargs['active_requests']}"
            if "lit_api" in kwargs:
                extra += f" api={type(kwargs['lit_api']).__name__}"
            if "litserver" in kwargs:
                extra += f" server={type(kwargs['litserver']).__name__}"
            record(f"{_name}{extra}")
        setattr(Recorder, _name, _hook)
    """
)


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.py"
    path.write_text(SCRIPT_HEAD + textwrap.dedent(body))
    return path


def _events(path: Path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def _names(events: list) -> list:
    return [event.split()[0] for event in events]


def test_worker_and_server_hooks_fire_in_order_with_litserve_keywords(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    script = _script(
        tmp_path,
        """
        class Square(ls.LitAPI):
            def setup(self, device):
                self.model = lambda x: x * x

            def decode_request(self, request):
                return request["input"]

            def predict(self, x):
                return self.model(x)

            def encode_response(self, output):
                return {"output": output}

        if __name__ == "__main__":
            server = ls.LitServer(Square(), accelerator="cpu", callbacks=Recorder(), track_requests=True)
            server.run(port=int(os.environ["PORT"]), generate_client_file=False)
        """,
    )
    server = serve_script(script, env={"EVENTS_FILE": str(events_file)})
    response = httpx.post(f"{server.url}/predict", json={"input": 3})
    assert response.json() == {"output": 9}
    wait_for(lambda: "on_response" in _names(_events(events_file)), timeout=10, message="on_response")

    events = _events(events_file)
    assert events[:3] == ["on_server_start server=LitServer", "on_before_setup api=Square", "on_after_setup api=Square"]
    request_events = events[3:]
    assert request_events[0] == "on_request active=1 server=LitServer"
    assert _names(request_events[1:7]) == [
        "on_before_decode_request",
        "on_after_decode_request",
        "on_before_predict",
        "on_after_predict",
        "on_before_encode_response",
        "on_after_encode_response",
    ]
    assert all(event.endswith("api=Square") for event in request_events[1:7])
    assert request_events[7:] == ["on_response server=LitServer"]

    os.killpg(server.process.pid, signal.SIGTERM)
    assert server.wait_exit(timeout=30) == 0
    assert _events(events_file)[-1] == "on_server_end server=LitServer"


def test_on_server_end_fires_after_the_drain_on_ctrl_c(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    gate = tmp_path / "go"
    script = _script(
        tmp_path,
        """
        from pathlib import Path

        class Gated(ls.LitAPI):
            def predict(self, x):
                record("predict started")
                while not Path(os.environ["GATE"]).exists():
                    time.sleep(0.01)
                return {"done": True}

        if __name__ == "__main__":
            ls.LitServer(Gated(), accelerator="cpu", callbacks=[Recorder()]).run(
                port=int(os.environ["PORT"]), generate_client_file=False
            )
        """,
    )
    server = serve_script(script, env={"EVENTS_FILE": str(events_file), "GATE": str(gate)})
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{server.url}/predict", json={}, timeout=30)
        wait_for(lambda: "predict" in _names(_events(events_file)), timeout=10, message="predict to start")
        os.killpg(server.process.pid, signal.SIGINT)
        wait_for(lambda: "shutting down" in server.output().lower() or _health(server.url) != 200, timeout=10)
        assert "on_server_end" not in _names(_events(events_file))  # still draining
        gate.touch()
        assert pending.result().json() == {"done": True}
    assert server.wait_exit(timeout=30) == 0
    names = _names(_events(events_file))
    assert names[-1] == "on_server_end"
    assert names.index("on_response") < names.index("on_server_end")


def test_a_raising_callback_is_logged_and_never_fails_the_request(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    script = _script(
        tmp_path,
        """
        class Broken(ls.Callback):
            def on_before_predict(self, lit_api):
                raise RuntimeError("callback bug in predict")

            def on_request(self, **kwargs):
                raise RuntimeError("callback bug in request")

        class Echo(ls.LitAPI):
            def predict(self, x):
                return x

        if __name__ == "__main__":
            ls.LitServer(Echo(), accelerator="cpu", callbacks=[Broken(), Recorder()]).run(
                port=int(os.environ["PORT"]), generate_client_file=False
            )
        """,
    )
    server = serve_script(script, env={"EVENTS_FILE": str(events_file)})
    for i in range(3):
        response = httpx.post(f"{server.url}/predict", json={"i": i})
        assert response.status_code == 200 and response.json() == {"i": i}
    wait_for(lambda: _names(_events(events_file)).count("on_response") == 3, timeout=10, message="3 responses")
    # The callbacks after the broken one still ran.
    assert _names(_events(events_file)).count("on_after_predict") == 3
    output = server.output()
    assert "callback bug in predict" in output and "callback bug in request" in output
    assert "on_before_predict" in output


def test_batched_and_streaming_hooks(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    script = _script(
        tmp_path,
        """
        from pathlib import Path

        class Batched(ls.LitAPI):
            def decode_request(self, request):
                return request["x"]

            def predict(self, xs):
                while len(list(Path(os.environ["ARRIVED"]).iterdir())) < 2:
                    time.sleep(0.01)
                return [x + 1 for x in xs]

        class Streamer(ls.LitAPI):
            def predict(self, x):
                for i in range(3):
                    yield i

            def encode_response(self, outputs):
                for out in outputs:
                    record(f"item {out}")
                    yield {"i": out}

        if __name__ == "__main__":
            apis = [
                Batched(max_batch_size=2, batch_timeout=5.0, api_path="/batch"),
                Streamer(stream=True, api_path="/stream"),
            ]
            ls.LitServer(apis, accelerator="cpu", callbacks=Recorder()).run(
                port=int(os.environ["PORT"]), generate_client_file=False
            )
        """,
    )
    arrived = tmp_path / "arrived"
    arrived.mkdir()
    server = serve_script(script, env={"EVENTS_FILE": str(events_file), "ARRIVED": str(arrived)})
    setup_events = len(_events(events_file))

    def post(i):
        (arrived / str(i)).touch()
        return httpx.post(f"{server.url}/batch", json={"x": i}, timeout=30).json()

    with ThreadPoolExecutor(2) as pool:
        assert sorted(r["x"] if isinstance(r, dict) else r for r in pool.map(post, [1, 2])) == [2, 3]
    wait_for(lambda: _names(_events(events_file)).count("on_response") == 2, timeout=10, message="2 responses")
    names = _names(_events(events_file)[setup_events:])
    assert names.count("on_before_decode_request") == 2 and names.count("on_after_encode_response") == 2
    assert names.count("on_before_predict") == 1 and names.count("on_after_predict") == 1  # one batch

    before = len(_events(events_file))
    with httpx.stream("POST", f"{server.url}/stream", json={}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert len(lines) == 3
    wait_for(lambda: _names(_events(events_file)).count("on_response") == 3, timeout=10, message="stream response")
    events = _events(events_file)[before:]
    # encode_response has finished once its last item is out.
    assert events.index("item 2") < _names(events).index("on_after_encode_response")


def _health(url: str) -> int:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code
    except httpx.TransportError:
        return 0


def test_async_hooks_fire_the_same_callbacks(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    script = _script(
        tmp_path,
        """
        import asyncio

        class AsyncEcho(ls.LitAPI):
            async def decode_request(self, request):
                return request["x"]

            async def predict(self, x):
                await asyncio.sleep(0)
                return x * 2

            async def encode_response(self, output):
                return {"y": output}

        if __name__ == "__main__":
            ls.LitServer(AsyncEcho(enable_async=True), accelerator="cpu", callbacks=Recorder()).run(
                port=int(os.environ["PORT"]), generate_client_file=False
            )
        """,
    )
    server = serve_script(script, env={"EVENTS_FILE": str(events_file)})
    assert httpx.post(f"{server.url}/predict", json={"x": 4}).json() == {"y": 8}
    wait_for(lambda: "on_response" in _names(_events(events_file)), timeout=10, message="on_response")
    names = _names(_events(events_file))
    assert names[names.index("on_request") + 1 : names.index("on_response")] == [
        "on_before_decode_request",
        "on_after_decode_request",
        "on_before_predict",
        "on_after_predict",
        "on_before_encode_response",
        "on_after_encode_response",
    ]


def test_track_requests_counts_requests_across_api_processes(serve_script, tmp_path):
    events_file = tmp_path / "events.txt"
    gate = tmp_path / "go"
    script = _script(
        tmp_path,
        """
        from pathlib import Path

        class Gated(ls.LitAPI):
            def predict(self, x):
                while not Path(os.environ["GATE"]).exists():
                    time.sleep(0.01)
                return x

        if __name__ == "__main__":
            server = ls.LitServer(Gated(), accelerator="cpu", callbacks=Recorder(), track_requests=True)
            server.run(port=int(os.environ["PORT"]), generate_client_file=False, num_api_servers=2)
        """,
    )
    server = serve_script(script, env={"EVENTS_FILE": str(events_file), "GATE": str(gate)})

    def post(i):
        with httpx.Client() as client:  # one connection per request: the API processes share them
            return client.post(f"{server.url}/predict", json={"i": i}, timeout=30).json()

    with ThreadPoolExecutor(3) as pool:
        results = pool.map(post, range(3))
        wait_for(lambda: _names(_events(events_file)).count("on_request") == 3, timeout=10, message="3 requests")
        gate.touch()
        assert sorted(r["i"] for r in results) == [0, 1, 2]
    active = [int(e.split("active=")[1].split()[0]) for e in _events(events_file) if e.startswith("on_request")]
    assert max(active) == 3


def test_ready_made_callbacks_print_prediction_time_and_active_requests(serve_script, tmp_path):
    script = tmp_path / "server.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            import litserve as ls
            from litserve.callbacks.defaults import PredictionTimeLogger, RequestTracker
            from litserve.test_examples.simple_example import SimpleLitAPI

            if __name__ == "__main__":
                api = SimpleLitAPI()
                server = ls.LitServer(api, callbacks=[PredictionTimeLogger(), RequestTracker()], track_requests=True)
                server.run(port=int(os.environ["PORT"]), generate_client_file=False)
            """
        )
    )
    server = serve_script(script)
    assert httpx.post(f"{server.url}/predict", json={"input": 4.0}).json() == {"output": 16.0}
    wait_for(lambda: "Prediction took" in server.output(), timeout=10, message="the prediction time line")
    output = server.output()
    assert re.search(r"Prediction took \d+\.\d\d seconds", output)
    assert "Active requests: 1" in output
