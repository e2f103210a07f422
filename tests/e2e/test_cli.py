"""``litserve run SCRIPT`` and ``python -m litserve`` behave like ``python SCRIPT``."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import httpx
import yaml

from tests.conftest import REPO_ROOT, free_port, launch

SERVER = textwrap.dedent(
    """
    import argparse
    import sys

    import litserve as ls
    from model import double  # a sibling module: needs the script's folder on sys.path

    class DoubleAPI(ls.LitAPI):
        def setup(self, device):
            self.model = double

        def predict(self, x):
            return {"output": self.model(x["input"]), "argv": sys.argv[1:], "main": __name__}

    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--flag", action="store_true")
        args = parser.parse_args()
        ls.LitServer(DoubleAPI(), accelerator="cpu").run(host="127.0.0.1", port=args.port, generate_client_file=False)
    """
)


def _litserve(*args: str, cwd=REPO_ROOT) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "litserve", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_run_is_python_script_with_its_folder_on_the_path_and_its_arguments(tmp_path):
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "model.py").write_text("def double(x):\n    return 2 * x\n")
    (app_dir / "server.py").write_text(SERVER)
    port = free_port()
    command = [sys.executable, "-m", "litserve", "run", "app/server.py", "--port", str(port), "--flag"]
    server = launch(command, tmp_path, port, env={"PYTHONPATH": str(REPO_ROOT)}, cwd=tmp_path)
    try:
        body = httpx.post(f"{server.url}/predict", json={"input": 21}).json()
    finally:
        server.stop()
    assert body == {"output": 42, "argv": ["--port", str(port), "--flag"], "main": "__mp_main__"}
    assert server.process.returncode == 0


def test_run_without_a_script_says_what_is_missing():
    result = _litserve("run")
    assert result.returncode == 2
    assert "give the server script to run" in result.stderr and "Traceback" not in result.stderr


def test_run_with_a_missing_file_says_so_without_a_traceback(tmp_path):
    result = _litserve("run", "no_such_server.py", "--port", "1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "litserve run: no such file: no_such_server.py"


def test_help_lists_the_subcommands_and_their_typed_flags():
    top = _litserve("--help")
    assert top.returncode == 0 and "run" in top.stdout and "Serve AI models over HTTP" in top.stdout
    run_help = _litserve("run", "--help")
    assert run_help.returncode == 0 and "python SCRIPT" in run_help.stdout and "script" in run_help.stdout


def test_version():
    import litserve

    result = _litserve("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"litserve {litserve.__version__}"


def test_subcommand_help_writes_flags_with_dashes_and_both_spellings_work(tmp_path):
    for name in ("run", "dockerize", "kubernetes", "llm"):
        shown = _litserve(name, "--help")
        assert shown.returncode == 0 and f"usage: litserve {name} " in shown.stdout
        flags = re.findall(r"(?<![\w-])--[a-z][\w-]*", shown.stdout)
        assert flags and [flag for flag in flags if "_" in flag] == [], (name, flags)
    assert "--max-total-token-num" in _litserve("llm", "--help").stdout
    (tmp_path / "server.py").write_text((REPO_ROOT / "examples/hello_world/server.py").read_text())
    for spelling in ("--min-replicas", "--min_replicas"):
        result = _litserve(
            "kubernetes",
            "server.py",
            "--name",
            "m",
            "--image",
            "r/m:1",
            spelling,
            "3",
            "--max_replicas=4",
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        hpa = yaml.safe_load((tmp_path / "k8s" / "hpa.yaml").read_text())
        assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 4)


def test_a_missing_argument_points_at_the_subcommand_help():
    for name, missing in (("dockerize", "server_filename"), ("kubernetes", "server_filename"), ("llm", "model_dir")):
        result = _litserve(name)
        assert result.returncode == 2
        assert f"run: litserve {name} --help" in result.stderr and "run: litserve --help" not in result.stderr
        assert missing in result.stderr.splitlines()[-1] and "Traceback" not in result.stderr
        assert f"usage: litserve {name} " in result.stderr
    typo = _litserve("llm", "/models/x", "--max-totl-token-num", "3")
    assert typo.returncode == 2 and "unrecognized arguments: --max-totl-token-num" in typo.stderr
    unknown = _litserve("serve")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr and "litserve --help" in unknown.stderr
