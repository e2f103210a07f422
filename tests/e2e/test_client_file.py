"""The generated client.py matches the server it was written for, and never replaces a user's own file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from litserve.client_file import MARKER
from tests.conftest import REPO_ROOT, free_port, launch


def run_from(folder, api: str, server_kwargs=None, run_kwargs=None):
    """Start a server with ``folder`` as its working directory, where it writes client.py."""
    port = free_port()
    command = [sys.executable, "-m", "tests.launch", "--port", str(port), "--api", api]
    command += ["--server-kwargs", json.dumps(server_kwargs or {})]
    command += ["--run-kwargs", json.dumps({"generate_client_file": True, **(run_kwargs or {})})]
    return launch(command, folder, port, env={"PYTHONPATH": str(REPO_ROOT)}, cwd=folder)


def run_client(folder, bare: bool) -> str:
    """Run client.py; ``bare`` uses ``python -S``: no site-packages, as after a plain install without extras."""
    command = [sys.executable, *(["-S"] if bare else []), "client.py"]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_pydantic_request_model_gives_a_body_that_validates(tmp_path):
    server = run_from(tmp_path, "tests.apps:PydanticAPI")
    try:
        assert run_client(tmp_path, bare=True).splitlines()[:3] == ["Status: 200", "Response:", ' {"output":1.0}']
        assert f"{MARKER} for PydanticAPI at /predict" in (tmp_path / "client.py").read_text()
    finally:
        server.stop()


def test_streaming_api_client_prints_each_item(tmp_path):
    server = run_from(tmp_path, "tests.apps:StreamAPI", server_kwargs={"stream": True})
    try:
        output = run_client(tmp_path, bare=True)
    finally:
        server.stop()
    assert output.splitlines()[0] == "Status: 200"
    assert [json.loads(line) for line in output.splitlines()[1:] if line] == [{"output": i} for i in range(3)]


@pytest.mark.parametrize("bare", [False, True], ids=["openai-sdk", "standard-library"])
def test_openai_spec_server_gets_a_chat_completions_client(tmp_path, bare):
    server = run_from(tmp_path, "tests.apps_specs:ChatAPI")
    try:
        output = run_client(tmp_path, bare=bare)
    finally:
        server.stop()
    text = (tmp_path / "client.py").read_text()
    assert "client.chat.completions.create(**body)" in text and "/v1/chat/completions" in text
    if bare:
        assert output.startswith("Status: 200") and '"chat.completion"' in output
    else:
        assert output.strip()  # the SDK parsed the reply and printed the assistant's message


def test_embedding_spec_server_gets_an_embeddings_client(tmp_path):
    server = run_from(tmp_path, "tests.apps_specs:EmbedAPI")
    try:
        output = run_client(tmp_path, bare=False)
    finally:
        server.stop()
    assert "client.embeddings.create(**body)" in (tmp_path / "client.py").read_text()
    assert output.startswith("2 embedding(s) of ")


def test_a_generated_client_is_rewritten_for_the_next_server_but_an_edited_one_is_kept(tmp_path):
    hello = run_from(tmp_path, "tests.apps:SquareAPI")
    hello.stop()
    assert "post({'input': 4.0})" in (tmp_path / "client.py").read_text()

    chat = run_from(tmp_path, "tests.apps_specs:ChatAPI")
    chat.stop()
    generated = (tmp_path / "client.py").read_text()
    assert "chat.completions" in generated  # the stale hello-world client was replaced

    edited = generated.split("\n", 1)[1]  # the user took the marker out: the file is theirs now
    (tmp_path / "client.py").write_text(edited)
    hello = run_from(tmp_path, "tests.apps:SquareAPI")
    hello.stop()
    assert (tmp_path / "client.py").read_text() == edited


def test_generate_client_file_false_writes_nothing(tmp_path):
    server = run_from(tmp_path, "tests.apps:SquareAPI", run_kwargs={"generate_client_file": False})
    server.stop()
    assert not (tmp_path / "client.py").exists()
