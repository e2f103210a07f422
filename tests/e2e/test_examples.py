"""Every example starts as a user would start it and answers correctly."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples"


def test_hello_world_example_and_its_generated_client(serve_script, tmp_path):
    server = serve_script(EXAMPLES / "hello_world" / "server.py")
    assert httpx.post(f"{server.url}/predict", json={"input": 4.0}).json() == {"output": 16.0}
    result = subprocess.run(
        [sys.executable, "client.py"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True
    )
    assert "Status: 200" in result.stdout


def test_pydantic_example_validates(serve_script):
    server = serve_script(EXAMPLES / "pydantic" / "server.py")
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9.0}
    assert httpx.post(f"{server.url}/predict", json={"input": "three"}).status_code == 422


def test_torch_workers_example_uses_both_workers(serve_script):
    server = serve_script(EXAMPLES / "torch_workers" / "server.py")
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(lambda i: client.post(f"{server.url}/predict", json={"input": i}).json(), range(64)))
    assert [b["output"] for b in bodies] == [2.0 * i + 1 for i in range(64)]
    assert len({b["worker_pid"] for b in bodies}) == 2


def test_streaming_example_and_client(serve_script):
    server = serve_script(EXAMPLES / "streaming" / "server.py")
    with httpx.stream("POST", f"{server.url}/stream-predict", json={"prompt": "a b c"}) as response:
        items = [json.loads(line) for line in response.iter_lines() if line]
    assert items == [{"index": 0, "token": "a"}, {"index": 1, "token": "b"}, {"index": 2, "token": "c"}]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "streaming" / "client.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PORT": str(server.port), "PATH": "/usr/bin:/bin"},
    )
    assert result.stdout.strip() == "streaming makes long answers feel fast"
