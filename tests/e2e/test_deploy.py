"""`litserve dockerize` and `litserve kubernetes` on every example server, judged by hadolint, kubernetes-validate
and checkov, and the server started the way the image starts it, answering on the paths the manifests probe."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import httpx
import pytest
import yaml

from litserve import __version__ as litserve_version
from tests.conftest import REPO_ROOT, free_port, launch, wait_for
from tests.e2e.test_metrics import scrape
from tests.validators import checkov, hadolint, kubernetes_validate

EXAMPLES = sorted(path.parent.name for path in (REPO_ROOT / "examples").glob("*/server.py"))
IMAGE = "registry.example.com/team/model:1.0.0"
KUBERNETES_OBJECTS = ["deployment", "hpa", "namespace", "networkpolicy", "pdb", "service"]


def litserve(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    """The ``litserve`` command of this checkout, as a user types it."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "litserve.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def copy_example(name: str, destination: Path) -> Path:
    folder = destination / name
    shutil.copytree(REPO_ROOT / "examples" / name, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def generate(folder: Path, *kubernetes_flags: str, dockerize_flags: Tuple[str, ...] = ()) -> None:
    result = litserve("dockerize", str(folder / "server.py"), *dockerize_flags)
    assert result.returncode == 0, result.stderr
    result = litserve(
        "kubernetes", str(folder / "server.py"), "--name", folder.name.replace("_", "-"), *kubernetes_flags
    )
    assert result.returncode == 0, result.stderr


def manifests(folder: Path) -> Dict[str, dict]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted((folder / "k8s").glob("*.yaml"))}


def dockerfile_instructions(path: Path) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in path.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def dockerfile_env(instructions: List[Tuple[str, str]]) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for instruction, arguments in instructions:
        if instruction == "ENV":
            for pair in shlex.split(arguments):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


# --- every example, every validator -----------------------------------------------------------------


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
@pytest.mark.parametrize("example", EXAMPLES)
def test_generated_files_pass_hadolint_and_kubernetes_validate(example, gpu, tmp_path):
    folder = copy_example(example, tmp_path)
    flags = ["--image", IMAGE] + (["--gpus", "1"] if gpu else [])
    generate(folder, *flags, dockerize_flags=("--gpu",) if gpu else ())

    lint = hadolint(folder / "Dockerfile")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    objects = manifests(folder)
    assert sorted(objects) == KUBERNETES_OBJECTS
    validation = kubernetes_validate(sorted((folder / "k8s").glob("*.yaml")))
    assert validation.returncode == 0, validation.stdout + validation.stderr
    assert validation.stdout.count(" passed for resource ") == len(KUBERNETES_OBJECTS)

    instructions = dockerfile_instructions(folder / "Dockerfile")
    base = instructions[0][1]
    assert base.startswith("nvidia/cuda:") if gpu else base.startswith("python:") and "-slim" in base
    assert ":latest" not in base and base.count(".") >= 2  # a pinned version, not a moving tag
    container = objects["deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert ("nvidia.com/gpu" in container["resources"]["limits"]) == gpu
    # Dependencies are installed before the code is copied, so code edits reuse the dependency layer.
    install = max(i for i, (kind, args) in enumerate(instructions) if kind == "RUN" and "pip install" in args)
    assert install < instructions.index(("COPY", ". ."))
    copies = [args for instruction, args in instructions if instruction == "COPY"]
    assert copies[-1] == ". ."
    # litserve is installed from the wheel dockerize wrote, never by name (the index's litserve is another project).
    wheel = f"wheels/litserve-{litserve_version}-py3-none-any.whl"
    assert (folder / wheel).is_file() and copies[0] == f"{wheel} ./{wheel}"
    installs = [args for kind, args in instructions if kind == "RUN" and "pip install" in args]
    assert installs[-1].startswith(f"pip install --no-cache-dir ./{wheel}")
    assert not re.search(r"\blitserve(==|\[|\s|$)", installs[-1].replace(f"./{wheel}", ""))
    if (folder / "requirements.txt").exists():
        assert copies[1] == "requirements.txt ./requirements.txt" and installs[-1].endswith(" -r requirements.txt")
    assert dict(instructions)["USER"] == "10001:10001"


@pytest.mark.timeout(900)  # checkov takes a minute or two; the first run also installs it (see tests/validators.py)
def test_checkov_passes_every_generated_file_with_each_skip_justified(tmp_path):
    for example in EXAMPLES:
        folder = copy_example(example, tmp_path / "cpu")
        generate(folder, "--image", IMAGE)
        folder = copy_example(example, tmp_path / "gpu")
        generate(folder, "--image", IMAGE + "@sha256:" + "0" * 64, "--gpus", "2", dockerize_flags=("--gpu",))
    reports = checkov(tmp_path)
    assert sorted(reports) == ["dockerfile", "kubernetes"]
    for check_type, report in reports.items():
        summary = report["summary"]
        failed = [(c["check_id"], c["file_path"]) for c in report["results"]["failed_checks"]]
        assert summary["failed"] == 0, f"{check_type}: {failed}"
        assert summary["passed"] > 0
        for skipped in report["results"]["skipped_checks"]:
            assert len(skipped["check_result"].get("suppress_comment", "")) > 20, skipped["check_id"]
        assert summary["parsing_errors"] == 0
    # Every Dockerfile and every Deployment was scanned.
    for check_type, name in (("dockerfile", "Dockerfile"), ("kubernetes", "k8s/deployment.yaml")):
        scanned = {check["file_path"] for check in reports[check_type]["results"]["passed_checks"]}
        assert {f"/{variant}/{example}/{name}" for variant in ("cpu", "gpu") for example in EXAMPLES} <= scanned


# --- what the files point at is what the server serves ------------------------------------------------


@pytest.mark.timeout(180)
@pytest.mark.parametrize("example", ["hello_world", "streaming"])
def test_the_container_command_serves_the_probes_the_manifests_name(example, tmp_path):
    folder = copy_example(example, tmp_path)
    port = free_port()
    generate(folder, "--image", IMAGE, "--port", str(port), dockerize_flags=("--port", str(port)))
    instructions = dockerfile_instructions(folder / "Dockerfile")
    steps = dict(instructions)
    deployment = manifests(folder)["deployment"]
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert steps["EXPOSE"] == str(port) and container["ports"] == [
        {"name": "http", "containerPort": port, "protocol": "TCP"}
    ]
    assert steps["STOPSIGNAL"] == "SIGTERM"
    command = json.loads(steps["CMD"])
    assert container["command"] == command

    # Start it as the container does: the image's CMD in WORKDIR, with the image's and the pod's environment.
    env = {**dockerfile_env(instructions), **{item["name"]: item["value"] for item in container["env"]}}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.pop("TMPDIR")  # the pod mounts an emptyDir there; here the test's own temp directory serves
    executable = sys.executable if command[0] == "python" else command[0]
    server = launch([executable, *command[1:]], tmp_path, port, env=env, cwd=folder, wait=False)
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/livez") == 200, timeout=60, message="the server")
        url = f"http://127.0.0.1:{port}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] == "http"
            path = get["path"]
            wait_for(lambda path=path: _status(url + path) == 200, timeout=60, message=f"{probe} at {path}")
        # Listening on every interface, as inside a container it must: 127.0.0.2 is not the address it was given.
        assert _status(f"http://127.0.0.2:{port}{container['readinessProbe']['httpGet']['path']}") == 200

        # The HEALTHCHECK's own command, run with the image's environment, passes.
        healthcheck = json.loads(steps["HEALTHCHECK"].split(" CMD ", 1)[1])
        assert healthcheck[0] == "python"
        check = subprocess.run([sys.executable, *healthcheck[1:]], env={**os.environ, **env}, timeout=30)
        assert check.returncode == 0

        # Prometheus scrapes where the annotations say, and finds the metric the autoscaler reads.
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port)
        metrics = scrape(f"http://127.0.0.1:{annotations['prometheus.io/port']}")
        metric = manifests(folder)["hpa"]["spec"]["metrics"][0]["pods"]["metric"]["name"]
        assert metrics.types[metric] == "gauge" and metrics.value(metric) == 0

        # The grace period outlasts the server's own drain: SIGTERM ends it well within it.
        grace = pod["spec"]["terminationGracePeriodSeconds"]
        assert grace > 30 + container["lifecycle"]["preStop"]["sleep"]["seconds"]  # shutdown_timeout is 30 s
        server.process.send_signal(signal.SIGTERM)
        assert server.wait_exit(timeout=grace) == 0
    finally:
        server.stop()


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return 0


# --- the committed example never goes stale -----------------------------------------------------------

DEPLOY_EXAMPLE = REPO_ROOT / "examples" / "deploy"
DEPLOY_EXAMPLE_FLAGS = ["--name", "hello-world", "--image", "registry.example.com/hello-world:0.1.0"]


def test_examples_deploy_is_what_the_commands_generate_now(tmp_path):
    assert (DEPLOY_EXAMPLE / "server.py").read_text() == (REPO_ROOT / "examples/hello_world/server.py").read_text()
    folder = tmp_path / "deploy"
    folder.mkdir()
    shutil.copy(DEPLOY_EXAMPLE / "server.py", folder / "server.py")
    assert litserve("dockerize", "server.py", cwd=folder).returncode == 0
    assert litserve("kubernetes", "server.py", *DEPLOY_EXAMPLE_FLAGS, cwd=folder).returncode == 0
    # The wheel is built from the installed litserve each time (not committed: it changes with every commit).
    assert [p.name for p in (folder / "wheels").iterdir()] == [f"litserve-{litserve_version}-py3-none-any.whl"]
    generated = sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and p.name != "server.py" and "wheels" not in p.parts
    )
    committed = sorted(
        p.relative_to(DEPLOY_EXAMPLE)
        for p in DEPLOY_EXAMPLE.rglob("*")
        if p.is_file()
        and p.name not in ("server.py", "client.py", "README.md")
        and not {"__pycache__", "wheels"} & set(p.parts)
    )
    assert generated == committed
    stale = [str(p) for p in generated if (folder / p).read_text() != (DEPLOY_EXAMPLE / p).read_text()]
    assert not stale, f"examples/deploy is stale; regenerate it (see its README): {stale}"


# --- bad input ------------------------------------------------------------------------------------------


def test_bad_input_gets_a_clear_message_and_no_files(tmp_path):
    folder = copy_example("hello_world", tmp_path)
    server = folder / "server.py"
    cases = [
        (["dockerize", str(tmp_path / "missing.py")], "server script not found"),
        (["dockerize", str(server), "--requirements", "/etc/hostname"], "outside"),
        (["kubernetes", str(server), "--name", "Bad_Name", "--image", IMAGE], "DNS label"),
        (["kubernetes", str(server), "--name", "ok", "--image", "repo/model:latest"], "not :latest"),
        (
            ["kubernetes", str(server), "--name", "ok", "--image", IMAGE, "--min-replicas", "3", "--max-replicas", "2"],
            "below the minimum",
        ),
    ]
    for args, message in cases:
        result = litserve(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (folder / "Dockerfile").exists() and not (folder / "k8s").exists()

    (folder / "server.py").write_text(server.read_text().replace("server.run(", 'server.run(host="127.0.0.1", '))
    result = litserve("dockerize", str(server))
    assert result.returncode == 2 and "all interfaces" in result.stderr
    fixed = server.read_text().replace('port=int(os.environ.get("PORT", 8000))', "port=9000")
    (folder / "server.py").write_text(fixed.replace('host="127.0.0.1", ', ""))
    result = litserve("dockerize", str(server), "--port", "8000")
    assert result.returncode == 2 and "listens on port 9000" in result.stderr


def test_probes_need_no_api_key_and_the_scrape_takes_a_bearer_token(serve_script, tmp_path):
    folder = copy_example("hello_world", tmp_path / "app")
    generate(folder, "--image", IMAGE)
    container = manifests(folder)["deployment"]["spec"]["template"]["spec"]["containers"][0]
    server = serve_script(folder / "server.py", env={"LIT_SERVER_API_KEY": "s3cret"})
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _status(server.url + container[probe]["httpGet"]["path"]) == 200, probe
    assert httpx.post(f"{server.url}/predict", json={"input": 2}).status_code == 401
    assert _status(f"{server.url}/metrics") == 401
    scraped = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer s3cret"})
    assert scraped.status_code == 200 and "litserve_requests_in_flight_per_worker" in scraped.text
