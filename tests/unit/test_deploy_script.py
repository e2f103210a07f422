"""Reading a server.py's serving options without running it, and the checks on deploy options."""

from __future__ import annotations

from pathlib import Path

import pytest

from litserve.cli import _normalize_flags
from litserve.deploy.docker import dockerize
from litserve.deploy.kubernetes import _quantity, kubernetes
from litserve.deploy.script import read_server_script
from litserve.options import DEFAULT_SHUTDOWN_TIMEOUT

HEADER = "import os\nimport litserve as ls\n\n"


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "server.py"
    path.write_text(HEADER + body)
    return path


@pytest.mark.parametrize(
    ("run_call", "port", "env", "default"),
    [
        ("server.run()", None, None, None),
        ("server.run(port=9001)", 9001, None, None),
        ('server.run("0.0.0.0", 9002)', 9002, None, None),
        ('server.run(port=int(os.environ.get("PORT", 8000)))', None, "PORT", 8000),
        ('server.run(port=int(os.getenv("APP_PORT", "7000")))', None, "APP_PORT", 7000),
        ('server.run(port=int(os.environ["PORT"]))', None, "PORT", None),
    ],
)
def test_the_port_is_read_from_the_run_call(tmp_path, run_call, port, env, default):
    facts = read_server_script(script(tmp_path, f"server = ls.LitServer(API())\n{run_call}\n"))
    assert (facts.port, facts.port_env, facts.port_default) == (port, env, default)
    assert facts.listens_on_all_interfaces


def test_server_options_and_the_largest_batch_size_are_read(tmp_path):
    body = (
        "api = API(max_batch_size=8)\n"
        "server = ls.LitServer(api, accelerator='cuda', healthcheck_path='/ready', shutdown_timeout=90,\n"
        "                      metrics_path='/prom', max_batch_size=4, timeout=compute())\n"
        "server.run(host='127.0.0.1', port=8080)\n"
    )
    facts = read_server_script(script(tmp_path, body))
    assert facts.accelerator == "cuda" and facts.wants_gpu
    assert facts.healthcheck_path == "/ready" and facts.metrics_path == "/prom"
    assert facts.shutdown_timeout == 90.0 and facts.max_batch_size == 8
    assert facts.host == "127.0.0.1" and not facts.listens_on_all_interfaces


def test_resolve_port_refuses_a_port_the_script_does_not_use(tmp_path):
    facts = read_server_script(script(tmp_path, "ls.LitServer(API()).run(port=9000)\n"))
    assert facts.resolve_port(None) == 9000 and facts.resolve_port(9000) == 9000
    with pytest.raises(ValueError, match="listens on port 9000"):
        facts.resolve_port(8000)
    env_facts = read_server_script(script(tmp_path, 'ls.LitServer(API()).run(port=int(os.getenv("PORT", 5000)))\n'))
    assert env_facts.resolve_port(None) == 5000 and env_facts.resolve_port(6000) == 6000


def test_a_file_that_is_not_a_server_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not create a LitServer"):
        read_server_script(script(tmp_path, "print('hi')\n"))
    with pytest.raises(ValueError, match="not valid Python"):
        read_server_script(script(tmp_path, "def broken(:\n"))
    with pytest.raises(FileNotFoundError):
        read_server_script(tmp_path / "missing.py")


def test_kubernetes_options_are_checked(tmp_path):
    import yaml

    path = script(tmp_path, "ls.LitServer(API(), max_batch_size=4).run()\n")
    out = tmp_path / "k8s"
    assert kubernetes(str(path), name="model", image="repo/model:1", replicas=3, out=str(out)) == 0
    hpa = yaml.safe_load((out / "hpa.yaml").read_text())
    assert hpa["metadata"]["namespace"] == "model"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["target"]["averageValue"] == "4"  # max_batch_size read from server.py
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > DEFAULT_SHUTDOWN_TIMEOUT
    for bad in (
        {"name": "Model"},
        {"image": "repo/model:latest"},
        {"replicas": 0},
        {"gpus": -1},
        {"min_replicas": 5, "max_replicas": 2},
        {"target_per_worker": 0},
    ):
        with pytest.raises(ValueError):
            kubernetes(str(path), **{"name": "model", "image": "repo/model:1", "out": str(out), **bad})
    no_metrics = script(tmp_path, "ls.LitServer(API(), metrics_path=None).run()\n")
    with pytest.raises(ValueError, match="metrics"):
        kubernetes(str(no_metrics), name="model", image="repo/model:1", out=str(out))


def test_an_llm_server_scales_on_its_waiting_requests(tmp_path):
    import yaml

    body = "from litserve.llm import LLMAPI\nls.LitServer(LLMAPI('/models/m', max_running_requests=32)).run()\n"
    out = tmp_path / "k8s"
    assert kubernetes(str(script(tmp_path, body)), name="llm", image="repo/llm:1", out=str(out)) == 0
    (metric,) = yaml.safe_load((out / "hpa.yaml").read_text())["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "litserve_llm_requests_waiting"
    assert metric["pods"]["target"]["averageValue"] == "2"  # a short queue per pod, not max_running_requests
    (rule,) = yaml.safe_load((out / "autoscaling" / "prometheus-adapter-rules.yaml").read_text())["rules"]
    assert rule["seriesQuery"].startswith("litserve_llm_requests_waiting{")
    keda = yaml.safe_load((out / "autoscaling" / "keda-scaledobject.yaml").read_text())
    assert "litserve_llm_requests_waiting{" in keda["spec"]["triggers"][0]["metadata"]["query"]
    plain = tmp_path / "plain"
    plain.mkdir()
    kubernetes(str(script(plain, "ls.LitServer(API()).run()\n")), name="m", image="repo/m:1", out=str(plain / "k8s"))
    (metric,) = yaml.safe_load((plain / "k8s" / "hpa.yaml").read_text())["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "litserve_requests_in_flight_per_worker"


def test_quantities_are_kubernetes_quantities():
    assert [_quantity(v) for v in (4.0, 1, 1.5, 0.25)] == ["4", "1", "1500m", "250m"]


def test_flags_accept_dashes_and_bare_booleans():
    assert _normalize_flags(dockerize, ["server.py", "--gpu"]) == ["server.py", "--gpu=true"]
    assert _normalize_flags(dockerize, ["--gpu", "server.py"]) == ["--gpu=true", "server.py"]
    assert _normalize_flags(dockerize, ["--gpu", "false", "s.py"]) == ["--gpu", "false", "s.py"]
    assert _normalize_flags(kubernetes, ["--min-replicas", "2", "--max-replicas=4"]) == [
        "--min_replicas",
        "2",
        "--max_replicas=4",
    ]
