"""Fixtures that start real litserve servers (uvicorn on a loopback port, real worker processes)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A warning in a server's log: litserve's and uvicorn's "WARNING:" lines, and Python's "...Warning: ..." ones.
_WARNING_LINE = re.compile(r"^WARNING:|\b[A-Z]\w*Warning: ")


def warnings_in(output: str) -> List[str]:
    """The lines of a server's log that are warnings."""
    return [line for line in output.splitlines() if _WARNING_LINE.search(line)]


def wait_for(predicate, timeout: float, interval: float = 0.02, message: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    give_up_at = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up_at:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class RunningServer:
    """A server process started by the tests."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        give_up_at = time.monotonic() + timeout
        while time.monotonic() < give_up_at:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def wait_exit(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        else:
            # The main process is gone; make sure nothing it started lingers.
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_server(
    tmp_path: Path,
    api: Union[str, List[str]],
    api_kwargs: Union[Dict[str, Any], List[Dict[str, Any]], None] = None,
    env: Optional[Dict[str, str]] = None,
    run_kwargs: Optional[Dict[str, Any]] = None,
    wait: bool = True,
    **server_kwargs: Any,
) -> RunningServer:
    apis = [api] if isinstance(api, str) else api
    kwargs_list = api_kwargs if isinstance(api_kwargs, list) else [api_kwargs or {}] * len(apis)
    port = free_port()
    command = [sys.executable, "-m", "tests.launch", "--port", str(port)]
    for target, kwargs in zip(apis, kwargs_list):
        command += ["--api", target, "--api-kwargs", json.dumps(kwargs)]
    command += ["--server-kwargs", json.dumps(server_kwargs), "--run-kwargs", json.dumps(run_kwargs or {})]
    return launch(command, tmp_path, port, env=env, wait=wait)


def start_script(tmp_path: Path, script: Path, env: Optional[Dict[str, str]] = None) -> RunningServer:
    """Run a user-style ``server.py`` (which reads its port from ``PORT``) from ``tmp_path``."""
    port = free_port()
    env = {"PORT": str(port), "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return launch([sys.executable, str(script)], tmp_path, port, env=env, cwd=tmp_path)


def launch(
    command: List[str],
    tmp_path: Path,
    port: int,
    env: Optional[Dict[str, str]] = None,
    wait: bool = True,
    cwd: Path = REPO_ROOT,
) -> RunningServer:
    log_path = tmp_path / f"server-{port}.log"
    process_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=process_env, start_new_session=True
        )
    server = RunningServer(process, port, log_path)
    if wait:
        try:
            server.wait_ready()
        except BaseException:
            server.stop()
            raise
    return server


@pytest.fixture
def serve(tmp_path):
    """Start a server: ``serve("tests.apps:SquareAPI", max_batch_size=4)``; stopped after the test."""
    started: List[RunningServer] = []

    def _serve(api: Union[str, List[str]], **kwargs: Any) -> RunningServer:
        server = start_server(tmp_path, api, **kwargs)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture
def serve_script(tmp_path):
    """Run a ``server.py`` as a user would; stopped after the test."""
    started: List[RunningServer] = []

    def _serve(script: Path, **kwargs: Any) -> RunningServer:
        server = start_script(tmp_path, script, **kwargs)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()
