"""Admin options against a real server: shutdown API, disable_openapi_url, workers_per_device per API."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server, wait_for

SHUTDOWN_KEY = "s3cret-shutdown-key"


@pytest.mark.parametrize("num_api_servers", [1, 2])
def test_shutdown_api_drains_in_flight_requests_and_exits_0(serve, tmp_path, num_api_servers):
    gate = tmp_path / "gate"
    server = serve(
        "tests.apps_admin:GateAPI",
        api_kwargs={"gate": str(gate)},
        env={"LIT_SHUTDOWN_API_KEY": SHUTDOWN_KEY},
        run_kwargs={"num_api_servers": num_api_servers},
        enable_shutdown_api=True,
        accelerator="cpu",
    )
    shutdown_url = f"{server.url}/shutdown"
    assert httpx.post(shutdown_url).status_code == 401
    wrong = httpx.post(shutdown_url, headers={"Authorization": "Bearer not-the-key"})
    assert wrong.status_code == 401 and "LIT_SHUTDOWN_API_KEY" in wrong.json()["detail"]
    assert httpx.post(shutdown_url, headers={"Authorization": SHUTDOWN_KEY}).status_code == 401  # no scheme
    assert httpx.get(f"{server.url}/health").status_code == 200  # still serving

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, f"{server.url}/predict", json={}, timeout=30)
        wait_for(lambda: Path(f"{gate}.started").exists(), timeout=10, message="request to reach predict")
        answer = httpx.post(shutdown_url, headers={"Authorization": f"Bearer {SHUTDOWN_KEY}"})
        assert answer.status_code == 200 and answer.text == "Server is initiating graceful shutdown."
        wait_for(lambda: _refused_or_503(server.url), timeout=10, message="server to stop taking requests")
        assert server.process.poll() is None  # draining: the request in flight still runs
        gate.touch()
        response = in_flight.result()
    assert response.status_code == 200 and response.json() == {"finished": True}
    assert server.wait_exit(timeout=30) == 0


def test_shutdown_api_without_its_key_is_a_clear_start_up_error(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "LIT_SHUTDOWN_API_KEY"}
    env["LIT_SHUTDOWN_API_KEY"] = ""
    server = start_server(tmp_path, "tests.apps:SquareAPI", env=env, wait=False, enable_shutdown_api=True)
    try:
        assert server.wait_exit(timeout=60) != 0
    finally:
        server.stop()
    assert "enable_shutdown_api=True needs the LIT_SHUTDOWN_API_KEY environment variable" in server.output()


def test_shutdown_route_is_absent_unless_enabled(serve):
    server = serve("tests.apps:SquareAPI", env={"LIT_SHUTDOWN_API_KEY": SHUTDOWN_KEY})
    response = httpx.post(f"{server.url}/shutdown", headers={"Authorization": f"Bearer {SHUTDOWN_KEY}"})
    assert response.status_code in (404, 405)
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_disable_openapi_url_removes_schema_and_docs(serve):
    default = serve("tests.apps:SquareAPI")
    assert httpx.get(f"{default.url}/openapi.json").status_code == 200
    assert httpx.get(f"{default.url}/docs").status_code == 200

    server = serve("tests.apps:SquareAPI", disable_openapi_url=True)
    assert httpx.get(f"{server.url}/openapi.json").status_code == 404
    assert httpx.get(f"{server.url}/docs").status_code == 404
    assert httpx.post(f"{server.url}/predict", json={"input": 2}).json() == {"output": 4}


@pytest.mark.parametrize(
    "workers_per_device",
    [[2, 1], {"/one": 2, "/two": 1}],
    ids=["list", "dict"],
)
def test_workers_per_device_per_api(serve, tmp_path, workers_per_device):
    server = serve(
        ["tests.apps_admin:SetupRecorderAPI", "tests.apps_admin:SetupRecorderAPI"],
        api_kwargs=[
            {"record_dir": str(tmp_path), "api_path": "/one"},
            {"record_dir": str(tmp_path), "api_path": "/two"},
        ],
        workers_per_device=workers_per_device,
        accelerator="cpu",
    )
    started = [path.name.split("-")[0] for path in tmp_path.iterdir() if path.name.startswith(("one-", "two-"))]
    assert sorted(started) == ["one", "one", "two"]
    assert httpx.post(f"{server.url}/one", json={}).status_code == 200
    assert httpx.post(f"{server.url}/two", json={}).status_code == 200


def _refused_or_503(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 503
    except httpx.TransportError:
        return True
