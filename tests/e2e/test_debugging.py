"""``ls.set_trace()`` inside a worker process, driven the way a user drives it: from the server's terminal."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Optional

import httpx
import pytest

from tests.conftest import REPO_ROOT, free_port

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")


def launch_command(port: int) -> list:
    """The server, with no request timeout (a request paused in the debugger would get 504)."""
    api = ["--api", "tests.apps_debugging:DebuggedAPI", "--server-kwargs", '{"timeout": false}']
    return [sys.executable, "-m", "tests.launch", "--port", str(port), *api]


class Console:
    """The reading end of the server's terminal (or pipe): waits for text to show up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen = b""

    def wait_for(self, text: bytes, timeout: float = 30) -> None:
        give_up_at = time.monotonic() + timeout
        while text not in self.seen:
            left = give_up_at - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not show up; the console's end: {self.seen[-1500:]!r}")
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the terminal closed
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"the console closed before {text!r}: {self.seen[-1500:]!r}")
                self.seen += chunk

    def forget(self) -> None:
        self.seen = b""


def post_in_background(port: int, value: float) -> tuple:
    result: dict = {}

    def post() -> None:
        result["response"] = httpx.post(f"http://127.0.0.1:{port}/predict", json={"input": value}, timeout=60)

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread, result


def finished(thread: threading.Thread, result: dict, timeout: float = 30) -> Optional[httpx.Response]:
    thread.join(timeout)
    return result.get("response")


def test_set_trace_in_a_worker_takes_commands_from_the_servers_terminal():
    port = free_port()
    pid, terminal = pty.fork()  # the server gets a terminal of its own, as when run from a shell
    if pid == 0:
        os.chdir(REPO_ROOT)
        os.environ.pop("LITSERVE_DEBUG", None)
        os.execv(sys.executable, launch_command(port))
    console = Console(terminal)
    try:
        console.wait_for(b"ready: 1 worker", timeout=60)
        # Debugging is off: set_trace_if_debug() does not stop.
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"input": -1}, timeout=30)
        assert response.json() == {"output": -2}
        # The worker runs in a process group of its own, a background group for this terminal: the debugger
        # must take the terminal to read from it, and give it back.
        thread, result = post_in_background(port, 21)
        console.wait_for(b"(Pdb)")
        console.forget()
        os.write(terminal, b"p doubled + 1000\n")
        console.wait_for(b"1042")
        console.wait_for(b"(Pdb)")
        os.write(terminal, b"c\n")
        response = finished(thread, result)
        assert response is not None and response.json() == {"output": 42}
        # The server has its terminal back: Ctrl-C (SIGINT to the foreground group) stops it.
        assert os.tcgetpgrp(terminal) == pid
        os.write(terminal, b"\x03")
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(terminal)


def test_set_trace_if_debug_reads_piped_commands_across_stops(tmp_path):
    port = free_port()
    env = {**os.environ, "LITSERVE_DEBUG": "1", "PYTHONUNBUFFERED": "1"}
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        launch_command(port),
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=write_end,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    os.close(write_end)
    console = Console(read_end)
    try:
        console.wait_for(b"ready: 1 worker", timeout=60)
        # Every command at once: the debugger keeps what it read ahead for its next stop.
        process.stdin.write(b"n\np doubled * 10\nc\n")
        process.stdin.flush()
        thread, result = post_in_background(port, -4)
        console.wait_for(b"-80")
        response = finished(thread, result)
        assert response is not None and response.json() == {"output": -8}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        os.close(read_end)
