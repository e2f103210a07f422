"""The image `litserve dockerize` describes, built and run step by step on this machine (no container runtime).

Each generated Dockerfile's instructions run in order, as ``docker build`` and ``docker run`` would: COPY from
the generated build context, RUN with ``/bin/sh -c`` in WORKDIR with the ENV so far, then the CMD. The image's
file system is a scratch folder (its absolute paths, ``/app`` and ``/opt/venv``, are rewritten into it). What the
base image provides stands in as follows: for ``python:*-slim`` a fresh virtual environment at ``/usr/local``,
for the CUDA base this machine's ``python3``; ``groupadd``, ``useradd`` and ``apt-get`` (root-only OS
provisioning) are recorded, not run. Every ``pip install`` and ``python`` step runs for real, against the
package index, so the installed litserve is what the image would get.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import httpx
import pytest

from tests.conftest import REPO_ROOT, RunningServer, free_port, wait_for
from tests.e2e.test_deploy import IMAGE, copy_example, dockerfile_instructions, generate, manifests

# Commands of the base images' package and user managers: recorded in the log, never run here.
PROVISIONING = ("groupadd", "useradd", "apt-get")
_ABSOLUTE_PATH = re.compile(r"(?<=[\s\"'=])/(?=[A-Za-z])|^/(?=[A-Za-z])")
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


class ImageSteps:
    """Runs a Dockerfile's instructions with ``root`` as the image's file system."""

    def __init__(self, context: Path, root: Path) -> None:
        self.context = context
        self.root = root
        self.workdir = root
        self.stubs = root / "provisioning-stubs"
        self.provisioned = root / "provisioning.log"
        self.env: Dict[str, str] = {}
        self.cmd: Optional[List[str]] = None
        self.healthcheck: Optional[List[str]] = None
        self.stop_signal = "SIGTERM"
        self.user: Optional[str] = None

    def in_image(self, text: str) -> str:
        """``text`` with the image's absolute paths moved under ``root``."""
        return _ABSOLUTE_PATH.sub(str(self.root) + "/", text)

    def base(self, image: str) -> None:
        """What the base image brings: an interpreter, PATH and HOME."""
        self.stubs.mkdir(parents=True)
        for name in PROVISIONING:
            stub = self.stubs / name
            stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{self.provisioned}"\n')
            stub.chmod(0o755)
        home = self.root / "root"
        home.mkdir()
        system_path = "/usr/bin:/bin"
        if image.startswith("python:"):
            # python:*-slim: Python and pip in /usr/local/bin, nothing else installed.
            subprocess.run([sys._base_executable, "-m", "venv", str(self.root / "usr/local")], check=True, timeout=120)
            path = f"{self.root}/usr/local/bin:{self.stubs}:{system_path}"
        else:
            # The CUDA runtime image has no Python; its RUN adds the distribution's python3 (with venv).
            (self.root / "usr/bin").mkdir(parents=True)
            (self.root / "usr/bin/python3").symlink_to(sys._base_executable)
            path = f"{self.root}/usr/bin:{self.stubs}:{system_path}"
        self.env = {"PATH": path, "HOME": str(home)}

    def run_instructions(self, instructions: List[Tuple[str, str]]) -> None:
        for instruction, arguments in instructions:
            getattr(self, f"do_{instruction.lower()}")(arguments)

    def do_from(self, arguments: str) -> None:
        self.base(arguments.split()[0])

    def do_env(self, arguments: str) -> None:
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            self.env[key] = _VARIABLE.sub(lambda m: self.env.get(m.group(1) or m.group(2), ""), self.in_image(value))

    def do_workdir(self, arguments: str) -> None:
        self.workdir = Path(self.in_image(arguments))
        self.workdir.mkdir(parents=True, exist_ok=True)

    def do_copy(self, arguments: str) -> None:
        *sources, destination = shlex.split(arguments)
        target = self.workdir / destination if not destination.startswith("/") else Path(self.in_image(destination))
        for source in sources:
            if source == ".":
                self._copy_context(target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(self.context / source, target)

    def do_run(self, arguments: str) -> None:
        command = self.in_image(arguments)
        result = subprocess.run(
            ["/bin/sh", "-c", command], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, f"RUN {arguments} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    def do_user(self, arguments: str) -> None:
        self.user = arguments  # the server runs as this uid in the image; here it runs as the test's user

    def do_expose(self, arguments: str) -> None:
        pass

    def do_healthcheck(self, arguments: str) -> None:
        self.healthcheck = json.loads(arguments.split(" CMD ", 1)[1])

    def do_stopsignal(self, arguments: str) -> None:
        self.stop_signal = arguments

    def do_cmd(self, arguments: str) -> None:
        self.cmd = json.loads(arguments)

    def which(self, program: str) -> str:
        """``program`` as the image's PATH finds it (what an exec-form CMD runs)."""
        found = shutil.which(program, path=self.env["PATH"])
        assert found, f"{program} is not on the image's PATH {self.env['PATH']}"
        return found

    def _copy_context(self, target: Path) -> None:
        ignored = [line.strip() for line in (self.context / ".dockerignore").read_text().splitlines()]
        patterns = [line.rstrip("/") for line in ignored if line and not line.startswith("#")]
        for path in sorted(self.context.rglob("*")):
            relative = path.relative_to(self.context).as_posix()
            parts = relative.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(fnmatch.fnmatch(p, pattern.replace("**/", "")) for p in prefixes for pattern in patterns):
                continue
            destination = target / relative
            if path.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
            else:
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, destination)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("gpu", [False, True], ids=["cpu-with-requirements-naming-litserve", "gpu-no-requirements"])
def test_the_images_own_steps_install_this_litserve_and_serve_the_probes(gpu, tmp_path):
    # examples/deploy, whose README regenerates these files and builds the image: the hello-world server.
    folder = copy_example("deploy", tmp_path)
    if not gpu:
        # A user's requirements naming litserve, unpinned: the index's litserve (another project) must not win.
        (folder / "requirements.txt").write_text("litserve\n")
    generate(folder, "--image", IMAGE, dockerize_flags=("--gpu",) if gpu else ())
    wheels = sorted(path.name for path in (folder / "wheels").iterdir())
    assert len(wheels) == 1 and wheels[0].startswith("litserve-") and wheels[0].endswith("-py3-none-any.whl")

    image = ImageSteps(folder, tmp_path / "image")
    image.run_instructions(dockerfile_instructions(folder / "Dockerfile"))
    provisioned = image.provisioned.read_text()
    assert "useradd --system --uid 10001" in provisioned and image.user == "10001:10001"
    assert ("apt-get install -y --no-install-recommends python3 python3-venv" in provisioned) == gpu

    # The image's python imports the litserve of the wheel, installed in its environment, byte for byte this
    # checkout's code (Lightning AI's litserve has no litserve/llm).
    python = image.which(image.cmd[0])
    probe = "import litserve, importlib.metadata as md; print(litserve.__file__); print(md.version('litserve'))"
    shown = subprocess.run(
        [python, "-c", probe], cwd=image.workdir, env=image.env, capture_output=True, text=True, timeout=60, check=True
    )
    installed_file, version = shown.stdout.split()
    installed = Path(installed_file).parent
    assert installed.is_relative_to(image.root) and "site-packages" in installed.parts, installed
    assert wheels[0] == f"litserve-{version}-py3-none-any.whl"
    ours = sorted(p.relative_to(REPO_ROOT / "litserve") for p in (REPO_ROOT / "litserve").rglob("*.py"))
    assert sorted(p.relative_to(installed) for p in installed.rglob("*.py")) == ours
    assert all((installed / p).read_bytes() == (REPO_ROOT / "litserve" / p).read_bytes() for p in ours)

    # The image's CMD, with `docker run -e PORT=...`: the probes the manifests name answer.
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {**image.env, "PORT": str(port)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [python, *image.cmd[1:]], cwd=image.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server = RunningServer(process, port, log_path)
    try:
        server.wait_ready(timeout=120)
        container = manifests(folder)["deployment"]["spec"]["template"]["spec"]["containers"][0]
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            path = container[probe_name]["httpGet"]["path"]
            assert httpx.get(f"{server.url}{path}", timeout=5).status_code == 200, probe_name
        assert {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")} == {"/health", "/livez"}
        assert httpx.post(f"{server.url}/predict", json={"input": 4.0}).json() == {"output": 16.0}
        check = subprocess.run([image.which(image.healthcheck[0]), *image.healthcheck[1:]], env=env, timeout=30)
        assert check.returncode == 0, "the HEALTHCHECK command fails"
        process.send_signal(getattr(signal, image.stop_signal))
        assert server.wait_exit(timeout=60) == 0, server.output()
    finally:
        server.stop()
    wait_for(lambda: process.poll() is not None, timeout=5, message="the server's exit")
    assert "Traceback" not in server.output(), server.output()
