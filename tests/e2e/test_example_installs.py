"""Every example installs and runs from its own README lines, in a virtual environment that has nothing else.

One venv per distinct list of install lines, built in layers: a list that extends another starts from a copy of
that venv (the same packages a fresh install would give), so torch is installed once for all its examples. pip's
cache and the wheels already on the machine are used as any ``pip install`` would.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from tests.conftest import REPO_ROOT, RunningServer, free_port

EXAMPLES = REPO_ROOT / "examples"
# The examples a user installs and runs (examples/deploy holds generated deployment files, tested elsewhere).
NAMES = sorted(path.parent.name for path in EXAMPLES.glob("*/README.md") if "\npip install -e ." in path.read_text())
BUILD_TIMEOUT_S = 1500


def readme_commands(name: str) -> Tuple[List[str], str, str]:
    """(install lines, server line, client line) of the bash block in ``examples/NAME/README.md``."""
    text = (EXAMPLES / name / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, f"examples/{name}/README.md has no bash block"
    lines = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    installs = [line for line in lines if line.startswith("pip install")]
    runs = [line for line in lines if line.startswith("python ")]
    assert len(runs) == 2, f"examples/{name}/README.md: expected a server line and a client line, got {runs}"
    return installs, runs[0], runs[1]


class LayeredVenvs:
    """Virtual environments keyed by the install lines run in them, in order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: Dict[Tuple[str, ...], Path] = {}

    def get(self, installs: List[str]) -> Path:
        key = tuple(installs)
        if key in self.built:
            return self.built[key]
        parent = self.get(installs[:-1]) if key else None
        path = self.root / f"venv{len(self.built)}"
        if parent is None:
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
        else:
            # Hard links: fast and small; pip replaces a file by unlinking it first, so the parent stays intact.
            subprocess.run(["cp", "-al", str(parent), str(path)], check=True, timeout=300)
            self._pip(path, key[-1])
        self.built[key] = path
        return path

    def _pip(self, venv: Path, line: str) -> None:
        args = shlex.split(line)[2:]  # after "pip install"
        # --no-compile: the same packages, without writing bytecode for all of torch up front.
        python = str(venv / "bin" / "python")
        command = ["nice", "-n", "10", python, "-m", "pip", "install", "-q", "--no-compile", *args]
        result = subprocess.run(
            command, cwd=REPO_ROOT, env=clean_env(venv), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
        assert result.returncode == 0, f"{line} failed:\n{result.stdout}\n{result.stderr}"


def clean_env(venv: Path, **extra: str) -> Dict[str, str]:
    """Only what a fresh shell with the venv activated would have: no PYTHONPATH, no other venv."""
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "VIRTUAL_ENV": str(venv)}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    return env


def to_command(line: str, venv: Path) -> List[str]:
    """A README ``python PATH`` line, with the venv's interpreter and paths from the repository root."""
    _, script = shlex.split(line)
    path = Path(script)
    return [str(venv / "bin" / "python"), str(REPO_ROOT / path if path.parent != Path(".") else path)]


@pytest.fixture(scope="module")
def venvs(tmp_path_factory) -> LayeredVenvs:
    return LayeredVenvs(tmp_path_factory.mktemp("example-venvs"))


@pytest.mark.timeout(BUILD_TIMEOUT_S)
@pytest.mark.parametrize("name", NAMES)
def test_example_runs_from_its_readme_in_a_fresh_venv(name, venvs, tmp_path):
    installs, server_line, client_line = readme_commands(name)
    assert installs[0] == "pip install -e ."
    venv = venvs.get(installs)
    # Nothing from the test environment leaked in: only what the README installed is there.
    probe = [str(venv / "bin" / "python"), "-c", "import sys; print(sys.prefix)"]
    assert subprocess.run(probe, capture_output=True, text=True, env=clean_env(venv)).stdout.strip() == str(venv)

    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            to_command(server_line, venv),
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env(venv, PORT=str(port)),
            start_new_session=True,
        )
    server = RunningServer(process, port, log_path)
    try:
        server.wait_ready(timeout=180)
        client = subprocess.run(
            to_command(client_line, venv),
            cwd=tmp_path,
            env=clean_env(venv, PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()
    assert client.returncode == 0, f"{client_line} failed:\n{client.stderr}\nserver log:\n{server.output()}"
    assert client.stdout.strip(), client.stderr
    if client_line == "python client.py":
        assert client.stdout.startswith("Status: 200"), client.stdout
