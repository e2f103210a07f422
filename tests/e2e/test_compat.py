"""Code written for LitServe, in the seeds' older style and the 0.2.x style, runs unchanged."""

from __future__ import annotations

import subprocess
import sys

import httpx

from tests.conftest import REPO_ROOT


def test_seed_gpu_example_style_runs_on_cpu(serve):
    server = serve("tests.apps:SeedStyleLinearAPI", accelerator="cpu", devices=1, workers_per_device=2, timeout=30)
    assert httpx.post(f"{server.url}/predict", json={"input": 4.0}).json() == {"output": 9.0}


def test_predict_only_api_with_default_hooks(serve):
    server = serve("tests.apps:DocsSummaryStyleAPI")
    assert httpx.post(f"{server.url}/predict", json={"input": 21}).json() == {"output": 42}


def test_litserve_test_examples_serve(serve):
    plain = serve("litserve.test_examples:SimpleLitAPI")
    assert httpx.post(f"{plain.url}/predict", json={"input": 3}).json() == {"output": 9}
    batched = serve("litserve.test_examples:SimpleBatchedAPI", max_batch_size=4, batch_timeout=0.01)
    assert httpx.post(f"{batched.url}/predict", json={"input": 3}).json() == {"output": 9}
    torch_api = serve("litserve.test_examples:SimpleTorchAPI")
    assert httpx.post(f"{torch_api.url}/predict", json={"input": 3.0}).json() == {"output": 7.0}
    stream = serve("litserve.test_examples:SimpleStreamAPI", stream=True)
    lines = httpx.post(f"{stream.url}/predict", json={"input": "hi"}).text.splitlines()
    assert lines == ['{"output":"0: hi"}', '{"output":"1: hi"}', '{"output":"2: hi"}']


def test_cli_version_and_run(serve_script, tmp_path):
    version = subprocess.run([sys.executable, "-m", "litserve.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("litserve ")
    script = tmp_path / "cli_server.py"
    script.write_text((REPO_ROOT / "examples" / "hello_world" / "server.py").read_text())
    wrapper = tmp_path / "run_with_cli.py"
    wrapper.write_text(f"import sys\nfrom litserve.cli import main\nsys.exit(main(['run', {str(script)!r}]))\n")
    server = serve_script(wrapper)
    assert httpx.post(f"{server.url}/predict", json={"input": 2}).json() == {"output": 4}


def test_litserve_0_2_server_and_run_arguments_are_accepted(serve):
    server = serve(
        "tests.apps:SquareAPI",
        loop="auto",
        callbacks=None,
        loggers=None,
        fast_queue=True,
        track_requests=False,
        model_metadata={"version": "1"},
        run_kwargs={"api_server_worker_type": "process", "pretty_logs": False},
    )
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9}
    index = httpx.get(server.url)
    assert index.status_code == 200 and index.text == "litserve running"
    assert httpx.get(f"{server.url}/info").json()["model"] == {"version": "1"}
