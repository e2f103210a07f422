"""The real tools that judge generated deployment files: hadolint, kubernetes-validate and checkov."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

from tests.conftest import REPO_ROOT

CHECKOV_REQUIREMENTS = REPO_ROOT / "_requirements" / "checkov.txt"
KUBERNETES_VERSION = "1.37.0"
TOOL_TIMEOUT_S = 300


def run_tool(command: List[str], cwd: Optional[Path] = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess:
    """hadolint at its strictest threshold: any finding, even a style one, fails."""
    return run_tool([_tool("hadolint"), "--failure-threshold", "style", "--no-color", str(dockerfile)])


def kubernetes_validate(files: List[Path]) -> subprocess.CompletedProcess:
    """Schema validation against a current Kubernetes, rejecting fields the API would not know."""
    command = [_tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *map(str, files)]
    return run_tool(command)


def checkov(directory: Path) -> dict:
    """checkov's JSON report on the Dockerfiles and Kubernetes manifests under ``directory``, offline."""
    command = [
        str(checkov_executable()),
        "--directory",
        str(directory),
        "--framework",
        "kubernetes",
        "dockerfile",
        "--skip-download",
        "--output",
        "json",
    ]
    result = run_tool(command, cwd=directory)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"checkov gave no JSON report (exit {result.returncode}):\n{result.stderr[-4000:]}"
        ) from None
    return {entry["check_type"]: entry for entry in (report if isinstance(report, list) else [report])}


def checkov_executable() -> Path:
    """``$CHECKOV``, else checkov from its own virtual environment, made on first use from the pinned file."""
    given = os.environ.get("CHECKOV")
    if given:
        return Path(given)
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "litserve-tests" / f"checkov-{digest}"
    executable = cache / "bin" / "checkov"
    complete = cache / "installed"
    if complete.exists():
        return executable
    shutil.rmtree(cache, ignore_errors=True)
    python = str(cache / "bin" / "python")
    for step in (
        [sys.executable, "-m", "venv", str(cache)],
        [python, "-m", "pip", "install", "--quiet", "-r", str(CHECKOV_REQUIREMENTS)],
    ):
        result = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            shutil.rmtree(cache, ignore_errors=True)
            pytest.skip(f"could not install checkov in its own environment (no package index?): {result.stderr[-500:]}")
    complete.touch()
    return executable


def _tool(name: str) -> str:
    """A console script of the test environment (installed with the test extras)."""
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        raise AssertionError(f"{name} is missing: install the test extras (pip install -e '.[test]')")
    return found
