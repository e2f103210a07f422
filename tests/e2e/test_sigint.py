"""One SIGINT stops a server started without a terminal, cleanly, whenever it comes.

``python server.py`` and ``litserve llm`` are started the way scripts and CI start them: stdin not a terminal,
either as a plain child process or as a background job of a non-interactive shell (``python server.py &``),
which starts with SIGINT ignored. One SIGINT goes to the server at a chosen moment: as soon as it listens, while
a worker is in ``setup``, right after ``ready:``, in the middle of a request, in the middle of a stream. Each time
the server must finish what it was answering, exit with status 0 within a bounded time, log no error or
traceback, and leave no process behind.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable, Dict, List, Optional

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port, wait_for

pytestmark = pytest.mark.timeout(600)
EXIT_WITHIN_S = 30  # the drain takes well under a second here; the bound only catches a server that never exits

SERVER = textwrap.dedent(
    """
    import os
    import time

    import litserve as ls

    GATES = os.environ["GATE_DIR"]


    def mark(name):
        open(os.path.join(GATES, name), "w").close()


    def wait_for(name):
        while not os.path.exists(os.path.join(GATES, name)):
            time.sleep(0.01)


    class GatedAPI(ls.LitAPI):
        def setup(self, device):
            mark("in-setup")
            wait_for("setup-go")

        def predict(self, request):
            mark("predicting")
            wait_for("finish")
            return {"output": request["input"]}


    class GatedStreamAPI(ls.LitAPI):
        def predict(self, request):
            for i in range(3):
                if i == 1:
                    mark("streaming")
                    wait_for("finish")
                yield {"i": i}


    if __name__ == "__main__":
        apis = [GatedAPI(api_path="/predict"), GatedStreamAPI(api_path="/stream", stream=True)]
        server = ls.LitServer(apis, accelerator="cpu")
        server.run(host="127.0.0.1", port=int(os.environ["PORT"]), generate_client_file=False)
    """
)


class Started:
    """A server process started without a terminal, and how to read its log."""

    def __init__(self, command: List[str], cwd: Path, env: Dict[str, str], log_path: Path, shell_job: bool) -> None:
        self.log_path = log_path
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        if shell_job:
            # `command > log 2>&1 &` in `sh -c`: a background job of a non-interactive shell (SIGINT ignored).
            script = f"{shlex.join(command)} > {shlex.quote(str(log_path))} 2>&1 & echo $!; wait $!"
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", script], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                text=True, start_new_session=True,
            )  # fmt: skip
            self.pid = int(self.process.stdout.readline())
        else:
            with open(log_path, "wb") as log:
                self.process = subprocess.Popen(
                    command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            self.pid = self.process.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 120) -> None:
        wait_for(lambda: text in self.output() or self.process.poll() is not None, timeout, 0.002, repr(text))
        assert text in self.output(), self.output()

    def descendants(self) -> List[int]:
        return _descendants(self.pid)

    def interrupt_once_and_check_a_clean_exit(self, before: Callable[[], None] = lambda: None) -> None:
        """One SIGINT; then ``before`` (e.g. let a held request finish); then a clean exit, nothing left."""
        processes = [self.pid, *self.descendants()]
        os.kill(self.pid, signal.SIGINT)
        before()
        try:
            status = self.process.wait(timeout=EXIT_WITHIN_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {EXIT_WITHIN_S} s after one SIGINT:\n{self.output()}") from None
        log = self.output()
        assert status == 0, log
        assert "Traceback" not in log and "ERROR" not in log, log
        wait_for(lambda: not any(_alive(pid) for pid in processes), 10, message="every process of the server gone")

    def kill(self) -> None:
        for pid in [self.pid, *self.descendants()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)


def _descendants(pid: int) -> List[int]:
    parents: Dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited; its parent has yet to reap it


def _in_thread(call: Callable[[], httpx.Response]) -> Callable[[], Optional[httpx.Response]]:
    """Run ``call`` in a thread; the returned function joins it and gives its response."""
    result: Dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: result.setdefault("response", call()), daemon=True)
    thread.start()

    def join() -> Optional[httpx.Response]:
        thread.join(timeout=60)
        return result.get("response")

    return join


# --- python server.py -------------------------------------------------------------------------------------

MOMENTS = ["listening", "in-setup", "ready", "mid-request", "mid-stream"]


@pytest.mark.parametrize("shell_job", [True, False], ids=["shell-background-job", "child-process"])
@pytest.mark.parametrize("moment", MOMENTS)
def test_one_sigint_stops_python_server_py_cleanly(moment, shell_job, tmp_path):
    (tmp_path / "server.py").write_text(SERVER)
    gates = tmp_path / "gates"
    gates.mkdir()
    if moment not in ("listening", "in-setup"):
        (gates / "setup-go").touch()
    port = free_port()
    env = {"PORT": str(port), "GATE_DIR": str(gates), "PYTHONPATH": str(REPO_ROOT)}
    server = Started([sys.executable, "server.py"], tmp_path, env, tmp_path / "server.log", shell_job)
    url = f"http://127.0.0.1:{port}"
    try:
        if moment == "listening":
            server.wait_log("listening on")  # uvicorn does not handle signals yet: litserve keeps this one
            server.interrupt_once_and_check_a_clean_exit()
        elif moment == "in-setup":
            wait_for(lambda: (gates / "in-setup").exists(), 60, message="setup to start")
            server.interrupt_once_and_check_a_clean_exit()
            assert "ready:" not in server.output()
        elif moment == "ready":
            server.wait_log("ready:")
            server.interrupt_once_and_check_a_clean_exit()
        elif moment == "mid-request":
            server.wait_log("ready:")
            reply = _in_thread(lambda: httpx.post(f"{url}/predict", json={"input": 7}, timeout=60))
            wait_for(lambda: (gates / "predicting").exists(), 30, message="the request to run")
            server.interrupt_once_and_check_a_clean_exit(before=lambda: (gates / "finish").touch())
            response = reply()
            assert response is not None and response.status_code == 200 and response.json() == {"output": 7}
        else:
            server.wait_log("ready:")
            with httpx.stream("POST", f"{url}/stream", json={}, timeout=60) as response:
                lines = response.iter_lines()
                assert json.loads(next(lines)) == {"i": 0}
                wait_for(lambda: (gates / "streaming").exists(), 30, message="the stream to be under way")
                server.interrupt_once_and_check_a_clean_exit(before=lambda: (gates / "finish").touch())
                assert [json.loads(line) for line in lines if line] == [{"i": 1}, {"i": 2}]
    finally:
        if server.process.poll() is None:
            server.kill()


# --- litserve llm -----------------------------------------------------------------------------------------

LLM_MOMENTS = ["in-setup", "ready", "mid-request", "mid-stream"]
LONG = {"max_new_tokens": 64, "ignore_eos": True}  # longer than the moments between the checks and the SIGINT


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    pytest.importorskip("transformers")
    from litserve.llm.testing import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama")


@pytest.mark.parametrize("moment", LLM_MOMENTS)
def test_one_sigint_stops_litserve_llm_in_the_background_cleanly(moment, model_dir, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "litserve.cli", "llm", model_dir, "--port", str(port), "--host", "127.0.0.1"]
    command += ["--accelerator", "cpu", "--no-access-log"]
    server = Started(command, tmp_path, {"PYTHONPATH": str(REPO_ROOT)}, tmp_path / "llm.log", shell_job=True)
    url = f"http://127.0.0.1:{port}"
    try:
        if moment == "in-setup":
            server.wait_log("starting workers")
            server.interrupt_once_and_check_a_clean_exit()
            assert "ready:" not in server.output()
            return
        server.wait_log("ready:")
        if moment == "ready":
            server.interrupt_once_and_check_a_clean_exit()
        elif moment == "mid-request":
            body = {"inputs": "What is AI?", "parameters": LONG}
            reply = _in_thread(lambda: httpx.post(f"{url}/generate", json=body, timeout=120))
            wait_for(lambda: "litserve_llm_requests_running 1.0" in httpx.get(f"{url}/metrics").text, 60, 0.01)
            server.interrupt_once_and_check_a_clean_exit()
            response = reply()
            assert response is not None and response.status_code == 200, server.output()
            assert response.json()["count_output_tokens"] == LONG["max_new_tokens"]
        else:
            body = {"inputs": "What is AI?", "parameters": LONG}
            with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=120) as response:
                events = (line for line in response.iter_lines() if line.startswith("data:"))
                first = json.loads(next(events)[len("data:") :])
                assert not first["finished"]
                rest: List[dict] = []
                read_the_rest = lambda: rest.extend(json.loads(line[len("data:") :]) for line in events)  # noqa: E731
                server.interrupt_once_and_check_a_clean_exit(before=read_the_rest)
            assert 1 + len(rest) == LONG["max_new_tokens"] and rest[-1]["finished"], server.output()
        assert '"POST /generate' not in server.output()  # --no-access-log
    finally:
        if server.process.poll() is None:
            server.kill()
