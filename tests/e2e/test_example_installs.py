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

import httpx
import pytest

from tests.conftest import REPO_ROOT, RunningServer, free_port

EXAMPLES = REPO_ROOT / "examples"
# Every example a user installs and runs. examples/deploy holds the files `litserve dockerize` and `litserve
# kubernetes` generate: its README builds an image, whose steps tests/e2e/test_image_build_steps.py runs.
NAMES = sorted(path.parent.name for path in EXAMPLES.glob("*/server.py") if path.parent.name != "deploy")
READMES = [REPO_ROOT / "README.md", *sorted(EXAMPLES.glob("*/README.md"))]
BUILD_TIMEOUT_S = 1500
# A requirement naming litserve: on the package index that name is another project (Lightning AI's LitServe).
_INDEX_LITSERVE = re.compile(r"^litserve\s*($|[\[=<>!~;@ ])", re.IGNORECASE)


def pip_install_lines(text: str) -> List[str]:
    """Every ``pip install ...`` a README tells the user to run, in code blocks and in inline code."""
    commands = re.findall(r"pip install [^`\n#]*", text)
    return [part.strip() for command in commands for part in command.split("&&") if part.strip()]


def index_litserve_requirements(line: str) -> List[str]:
    """What in ``pip install ARGS`` would resolve the name litserve on the package index (requirements files too)."""
    args, named = shlex.split(line)[2:], []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-e", "--editable", "-c", "--constraint", "-r", "--requirement"):
            if arg in ("-r", "--requirement"):
                lines = (REPO_ROOT / args[index + 1]).read_text().splitlines()
                named += [req for req in (text.split("#")[0].strip() for text in lines) if _INDEX_LITSERVE.match(req)]
            index += 2
            continue
        if not arg.startswith("-") and _INDEX_LITSERVE.match(arg):
            named.append(arg)
        index += 1
    return named


def test_every_readme_install_line_installs_this_project_never_the_index_litserve():
    lines = {str(path.relative_to(REPO_ROOT)): pip_install_lines(path.read_text()) for path in READMES}
    assert sum(len(found) for found in lines.values()) >= 20
    assert any("-e '.[llm]'" in line for line in lines["README.md"])
    wrong = {readme: [line for line in found if index_litserve_requirements(line)] for readme, found in lines.items()}
    assert wrong == {readme: [] for readme in lines}
    # The check itself sees what it must.
    assert index_litserve_requirements("pip install 'litserve[llm]'") == ["litserve[llm]"]
    assert index_litserve_requirements("pip install -U litserve==0.2.19 torch==2.13.0") == ["litserve==0.2.19"]
    assert index_litserve_requirements("pip install -e '.[llm]' ./wheels/litserve-0.1.0-py3-none-any.whl") == []


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


def readme_block_with(line: str) -> List[str]:
    """The pip lines of the README.md bash block that holds ``line``, in order."""
    for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S):
        installs = pip_install_lines(block)
        if line in installs:
            return installs
    raise AssertionError(f"README.md has no bash block with {line!r}")


@pytest.mark.timeout(BUILD_TIMEOUT_S)
def test_the_readme_llm_and_mcp_install_lines_give_working_extras(venvs, tmp_path):
    mcp_venv = venvs.get(readme_block_with("pip install -e '.[mcp]'"))
    check = "import mcp, litserve, litserve.mcp; print(litserve.__file__)"
    shown = subprocess.run([str(mcp_venv / "bin" / "python"), "-c", check], env=clean_env(mcp_venv), cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert shown.returncode == 0 and shown.stdout.strip() == str(REPO_ROOT / "litserve" / "__init__.py"), shown.stderr

    # The LLM lines: `litserve llm` serves a seeded tiny model from that environment alone.
    llm_venv = venvs.get(readme_block_with("pip install -e '.[llm]'"))
    python = str(llm_venv / "bin" / "python")
    build = "from litserve.llm.testing import build_tiny_model; build_tiny_model('tiny', arch='llama')"
    subprocess.run([python, "-c", build], env=clean_env(llm_venv), cwd=tmp_path, check=True, timeout=300)
    port = free_port()
    log_path = tmp_path / "llm.log"
    command = [str(llm_venv / "bin" / "litserve"), "llm", "tiny", "--port", str(port), "--host", "127.0.0.1"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
                                   env=clean_env(llm_venv), start_new_session=True)  # fmt: skip
    server = RunningServer(process, port, log_path)
    try:
        server.wait_ready(timeout=180)
        body = {"inputs": "What is AI?", "parameters": {"max_new_tokens": 3}}
        reply = httpx.post(f"{server.url}/generate", json=body, timeout=120)
        assert reply.status_code == 200 and 1 <= reply.json()["count_output_tokens"] <= 3, reply.text
    finally:
        server.stop()
