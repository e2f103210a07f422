"""Truthful start-up and shutdown: listening before the first line, one ready line, a quiet drain on signals."""

from __future__ import annotations

import os
import re
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import launch, start_server, wait_for

SETUP_DELAY_S = 2.0
SLOW = {"SETUP_DELAY_S": str(SETUP_DELAY_S)}
NOISE = ("ERROR", "Traceback", "restarting", "Exception ignored", "CRITICAL")


def _lines(server) -> list:
    return server.output().splitlines()


@pytest.mark.parametrize("num_api_servers", [1, 2])
def test_port_accepts_before_the_first_startup_line_and_early_requests_wait(tmp_path, num_api_servers):
    server = start_server(
        tmp_path,
        "tests.apps_first_hour:DelayedSetupAPI",
        env=SLOW,
        wait=False,
        accelerator="cpu",
        run_kwargs={"num_api_servers": num_api_servers},
    )
    try:
        wait_for(lambda: "listening on" in server.output(), 60, interval=0.001, message="the start-up line")
        # At once, while the workers are still in setup: connected and answered once they are ready.
        response = httpx.post(f"{server.url}/predict", json={"input": 21}, timeout=60)
        assert response.status_code == 200 and response.json() == {"output": 42}
        first = _lines(server)[0]
        assert first == f"INFO:     litserve: listening on http://127.0.0.1:{server.port}", first
    finally:
        server.stop()


def test_ready_line_once_every_worker_finished_setup(tmp_path):
    server = start_server(
        tmp_path,
        "tests.apps_first_hour:DelayedSetupAPI",
        env=SLOW,
        accelerator="cpu",
        workers_per_device=2,
    )
    try:
        wait_for(lambda: "ready:" in server.output(), 30, message="the ready line")
        ready = [line for line in _lines(server) if "ready:" in line]
        assert len(ready) == 1
        match = re.fullmatch(r"INFO:     ready: 2 workers in (\d+\.\d) s", ready[0])
        assert match and float(match.group(1)) >= SETUP_DELAY_S, ready
        assert httpx.get(f"{server.url}/health").status_code == 200
    finally:
        server.stop()


def test_wildcard_host_is_shown_as_such_with_the_address_to_open(tmp_path):
    server = start_server(tmp_path, "tests.apps:SquareAPI", run_kwargs={"host": "0.0.0.0"})
    try:
        line = _lines(server)[0]
        expected = f"listening on http://0.0.0.0:{server.port} (all interfaces; on this machine: {server.url})"
        assert line.endswith(expected), line
    finally:
        server.stop()


def test_a_port_in_use_is_one_clear_line_and_exit_1(tmp_path):
    first = start_server(tmp_path, "tests.apps:SquareAPI")
    try:
        command = [sys.executable, "-m", "tests.launch", "--api", "tests.apps:SquareAPI", "--port", str(first.port)]
        (tmp_path / "second").mkdir()
        second = launch(command, tmp_path / "second", first.port, wait=False)
        assert second.wait_exit(timeout=60) == 1
        output = second.output()
        assert f"ERROR:     cannot listen on 127.0.0.1:{first.port}: Address already in use" in output, output
        assert "Traceback" not in output
    finally:
        first.stop()


@pytest.mark.parametrize(
    "sig, num_api_servers",
    [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2), (signal.SIGINT, 2)],
    ids=["SIGTERM", "SIGINT", "SIGTERM-2-api-servers", "SIGINT-2-api-servers"],
)
def test_signal_to_the_process_group_drains_quietly(tmp_path, sig, num_api_servers):
    marks = tmp_path / "marks"
    marks.mkdir()
    server = start_server(
        tmp_path,
        "tests.apps_first_hour:MarkedSleepAPI",
        env={"MARK_DIR": str(marks)},
        accelerator="cpu",
        workers_per_device=2,
        run_kwargs={"num_api_servers": num_api_servers},
    )
    with ThreadPoolExecutor(2) as pool:
        url = f"{server.url}/predict"
        running = [pool.submit(httpx.post, url, json={"id": i, "sleep": 1.0}, timeout=30) for i in range(2)]
        wait_for(lambda: len(list(marks.iterdir())) == 2, 10, message="both workers to be running a request")
        os.killpg(server.process.pid, sig)  # as timeout(1), systemd and terminals do
        # The requests being served finish: a clean drain, not an abort.
        assert [future.result().json() for future in running] == [{"id": 0}, {"id": 1}]
    assert server.wait_exit(timeout=30) == 0
    output = server.output()
    assert not [line for line in output.splitlines() if any(word in line for word in NOISE)], output
    assert "Application shutdown complete." in output


def test_pretty_logs_use_rich(tmp_path):
    server = start_server(tmp_path, "tests.apps:SquareAPI", run_kwargs={"pretty_logs": True})
    try:
        assert httpx.post(f"{server.url}/predict", json={"input": 2}).json() == {"output": 4}
        wait_for(lambda: "ready: 1 worker" in server.output(), 10, message="the ready line")
        ready = next(line for line in _lines(server) if "ready: 1 worker" in line)
        # rich's layout: a time column, then the level padded, then the message (never uvicorn's "INFO:").
        assert re.search(r"INFO\s+ready: 1 worker in", ready) and not ready.startswith("INFO:"), ready
    finally:
        server.stop()
