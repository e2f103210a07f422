"""Loggers against a real server: entries from every hook, a failing logger, a full queue, mounted apps."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import httpx

from tests.conftest import wait_for

SCRIPT = textwrap.dedent(
    """
    import os, threading, time
    from pathlib import Path
    import litserve as ls

    LOG_DIR = Path(os.environ["LOG_DIR"])

    class FileLogger(ls.Logger):
        def __init__(self, name):
            super().__init__()
            self.name = name

        def process(self, key, value):
            gate = LOG_DIR / "gate"
            while os.environ.get("HOLD_LOGGERS") and not gate.exists():
                time.sleep(0.01)
            with open(LOG_DIR / f"{self.name}.log", "a") as f:
                f.write(f"{key}={value} pid={os.getpid()}\\n")

    class FailingLogger(ls.Logger):
        def process(self, key, value):
            if key == "predict":
                raise ValueError("logger cannot handle predict")
            with open(LOG_DIR / "failing.log", "a") as f:
                f.write(f"{key}={value}\\n")

    class LockedLogger(ls.Logger):
        # Holds a lock, so it cannot be pickled: the logger process builds its own.

        def __init__(self):
            super().__init__()
            self.lock = threading.Lock()

        def process(self, key, value):
            with self.lock, open(LOG_DIR / "locked.log", "a") as f:
                f.write(f"{key}={value}\\n")

    async def stats_app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"stats from {os.getpid()}".encode()})

    class Logged(ls.LitAPI):
        def setup(self, device):
            self.log("setup", device)

        def decode_request(self, request):
            self.log("decode", request["n"])
            return request["n"]

        def predict(self, n):
            self.log("predict", n)
            for i in range(int(os.environ.get("EXTRA_ENTRIES", "0"))):
                self.log("extra", i)
            return {"n": n, "pid": os.getpid()}

        def encode_response(self, output):
            self.log("encode", output["n"])
            return output

    if __name__ == "__main__":
        mounted = FileLogger("mounted")
        mounted.mount("/logger-stats", stats_app)
        server = ls.LitServer(
            Logged(), accelerator="cpu", loggers=[mounted, FailingLogger(), FileLogger("second"), LockedLogger()]
        )
        server.run(
            port=int(os.environ["PORT"]),
            generate_client_file=False,
            num_api_servers=int(os.environ.get("API_SERVERS", "1")),
        )
    """
)


def _start(serve_script, tmp_path: Path, **env: str):
    script = tmp_path / "server.py"
    script.write_text(SCRIPT)
    return serve_script(script, env={"LOG_DIR": str(tmp_path), **env})


def _lines(path: Path) -> list:
    return path.read_text().splitlines() if path.exists() else []


def test_entries_from_every_hook_reach_every_logger_in_their_own_process(serve_script, tmp_path):
    server = _start(serve_script, tmp_path)
    worker_pids = {httpx.post(f"{server.url}/predict", json={"n": n}).json()["pid"] for n in range(3)}
    expected = ["setup=cpu"] + [f"{hook}={n}" for n in range(3) for hook in ("decode", "predict", "encode")]
    for name in ("mounted", "second"):
        log = tmp_path / f"{name}.log"
        wait_for(lambda log=log: len(_lines(log)) == len(expected), timeout=20, message=f"{name} entries")
        entries = [line.split(" pid=") for line in _lines(log)]
        assert [entry for entry, _ in entries] == expected
        logger_pids = {int(pid) for _, pid in entries}
        assert len(logger_pids) == 1 and not logger_pids & worker_pids  # off the worker, in one process

    # The logger that raised on "predict" entries still got everything else, and the error was logged.
    failing = tmp_path / "failing.log"
    wait_for(lambda: len(_lines(failing)) == 7, timeout=20, message="entries of the failing logger")
    assert "logger cannot handle predict" in server.output()

    # A logger that cannot be pickled is built again in the logger process, and gets every entry.
    locked = tmp_path / "locked.log"
    wait_for(lambda: len(_lines(locked)) == len(expected), timeout=20, message="entries of the rebuilt logger")
    assert _lines(locked) == expected
    assert "logger LockedLogger cannot be pickled" in server.output()


def test_a_full_queue_drops_entries_without_blocking_requests_and_counts_them(serve_script, tmp_path):
    total = 30_000
    server = _start(serve_script, tmp_path, HOLD_LOGGERS="1", EXTRA_ENTRIES=str(total))
    # The loggers are held: the request must still be answered, with entries dropped rather than waited for.
    response = httpx.post(f"{server.url}/predict", json={"n": 1}, timeout=60)
    assert response.status_code == 200
    metrics = httpx.get(f"{server.url}/metrics").text
    dropped = float(re.search(r'litserve_logger_dropped_entries_total\{path="/predict"\} (\S+)', metrics).group(1))
    assert dropped > 0
    assert "dropped" in server.output()

    (tmp_path / "gate").touch()
    # Everything not dropped reaches the logger: setup, decode, predict, the extras, encode.
    log = tmp_path / "second.log"
    wait_for(lambda: len(_lines(log)) + dropped >= total + 4, timeout=60, message="queued entries to be processed")
    assert len(_lines(log)) + dropped == total + 4


def test_mounted_app_is_served_by_every_api_process(serve_script, tmp_path):
    server = _start(serve_script, tmp_path, API_SERVERS="2")
    answers = set()
    for _ in range(20):
        with httpx.Client() as client:  # a new connection each time, so both API processes get some
            response = client.get(f"{server.url}/logger-stats", follow_redirects=True)  # Starlette adds a /
            assert response.status_code == 200
            answers.add(response.text)
    assert all(answer.startswith("stats from ") for answer in answers)
    assert httpx.post(f"{server.url}/predict", json={"n": 5}).json()["n"] == 5
