"""Start benchmark servers in their own process group, wait for health, and always kill the whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from harness.httpclient import probe_status

HOST = "127.0.0.1"
_LIVE: set[ServerProcess] = set()


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Return the live (non-zombie) pids whose process group is ``pgid`` (Linux /proc)."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def stop_all() -> None:
    """Stop every server this process started and has not stopped yet (last-resort cleanup)."""
    for server in list(_LIVE):
        server.stop()


class ServerError(RuntimeError):
    """A benchmark server failed to start or become healthy."""


class ServerProcess:
    """One server script run as ``python script --port P ...`` in a new session (its own process group)."""

    def __init__(self, name: str, argv: list[str], port: int, log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen] = None
        self.started_at = 0.0

    def start(self) -> None:
        """Spawn the process; stdout and stderr go to the log file."""
        with open(self.log_path, "ab") as log:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)

    def wait_healthy(self, timeout: float, path: str = "/health", interval: float = 0.005) -> float:
        """Poll GET ``path`` until it answers 200; return seconds since spawn. Raise if it dies or times out."""
        assert self.proc is not None, "start() first"
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if probe_status(HOST, self.port, path, timeout=1.0) == 200:
                return time.perf_counter() - self.started_at
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode} before healthy\n{self.log_tail()}")
            time.sleep(interval)
        raise ServerError(f"{self.name} not healthy after {timeout:.0f} s\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, wait ``grace`` s, then SIGKILL whatever is left of it."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        self._signal_group(pgid, signal.SIGTERM)
        if not self._wait_group_gone(pgid, grace):
            self._signal_group(pgid, signal.SIGKILL)
            if not self._wait_group_gone(pgid, 5.0):
                raise ServerError(f"{self.name}: processes {group_members(pgid)} survived SIGKILL")
        self.proc = None
        _LIVE.discard(self)

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _signal_group(self, pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def _wait_group_gone(self, pgid: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc is not None:
                self.proc.poll()  # reap our direct child so it is not counted as a zombie member
            if not group_members(pgid):
                return True
            time.sleep(0.05)
        return False

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
