"""POST /predict end to end: payloads, validation, bad input, schemas and response types."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import requests

from tests.conftest import REPO_ROOT, free_port, start_server


def test_hello_world_squares_the_input(serve):
    server = serve("tests.apps:SquareAPI")
    response = httpx.post(f"{server.url}/predict", json={"input": 4.0})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"output": 16.0}


def test_large_bodies_cross_to_the_worker_and_back_beside_small_ones(serve):
    server = serve("tests.apps:ReverseAPI", max_batch_size=4, batch_timeout=0.01)
    big = "".join(chr(97 + i % 26) for i in range(24 * 1024 * 1024))  # 24 MB in, 24 MB out

    def small(i: int) -> dict:
        return httpx.post(f"{server.url}/predict", json={"text": f"small {i}"}, timeout=30).json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        big_reply = pool.submit(httpx.post, f"{server.url}/predict", json={"text": big}, timeout=60)
        small_replies = list(pool.map(small, range(40)))
        response = big_reply.result()
    assert response.status_code == 200
    assert response.json() == {"text": big[::-1], "length": len(big)}
    assert small_replies == [{"text": f"small {i}"[::-1], "length": len(f"small {i}")} for i in range(40)]


def test_requests_client_and_many_sequential_calls(serve):
    server = serve("tests.apps:SquareAPI")
    with requests.Session() as session:
        outputs = [session.post(f"{server.url}/predict", json={"input": i}).json()["output"] for i in range(50)]
    assert outputs == [i**2 for i in range(50)]


def test_pydantic_request_is_validated_with_field_errors(serve):
    server = serve("tests.apps:PydanticAPI")
    ok = httpx.post(f"{server.url}/predict", json={"input": 3})
    assert ok.status_code == 200 and ok.json() == {"output": 9.0}

    bad = httpx.post(f"{server.url}/predict", json={"input": "not a number"})
    assert bad.status_code == 422
    error = bad.json()["detail"][0]
    assert error["loc"] == ["body", "input"]
    assert "number" in error["msg"]

    missing = httpx.post(f"{server.url}/predict", json={})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["type"] == "missing"


def test_pydantic_models_appear_in_openapi_and_docs(serve):
    server = serve("tests.apps:PydanticAPI")
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operation = schema["paths"]["/predict"]["post"]
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    response_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert request_ref.endswith("/PredictRequest")
    assert response_ref.endswith("/PredictResponse")
    assert schema["components"]["schemas"]["PredictRequest"]["properties"]["input"]["type"] == "number"
    docs = httpx.get(f"{server.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_bad_bodies_get_400_with_a_message(serve):
    server = serve("tests.apps:SquareAPI")
    url = f"{server.url}/predict"
    json_type = {"content-type": "application/json"}

    malformed = httpx.post(url, content=b'{"input": 4', headers=json_type)
    assert malformed.status_code == 400
    assert "not valid JSON" in malformed.json()["detail"]

    empty = httpx.post(url, content=b"", headers=json_type)
    assert empty.status_code == 400
    assert "empty" in empty.json()["detail"]

    wrong_type = httpx.post(url, content=b"input=4", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 400
    assert "Content-Type" in wrong_type.json()["detail"]

    not_utf8 = httpx.post(url, content=b'{"input": "\xff\xfe"}', headers=json_type)
    assert not_utf8.status_code == 400

    deep = b"[" * 100_000 + b"]" * 100_000
    assert httpx.post(url, content=deep, headers=json_type).status_code == 400

    # The server is still fine afterwards.
    assert httpx.post(url, json={"input": 2}).json() == {"output": 4}


def test_json_sent_as_curl_default_form_type_still_works(serve):
    server = serve("tests.apps:SquareAPI")
    response = httpx.post(
        f"{server.url}/predict",
        content=b'{"input": 5}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json() == {"output": 25}


def test_big_integers_are_valid_json(serve):
    server = serve("tests.apps:SquareAPI")
    response = httpx.post(f"{server.url}/predict", json={"input": 2**70})
    assert response.status_code == 200
    assert response.json() == {"output": 2**140}


def test_multipart_upload_reaches_decode_request(serve):
    server = serve("tests.apps:FormAPI")
    response = httpx.post(
        f"{server.url}/predict",
        files={"file": ("cat.png", b"\x89PNG" + b"\0" * 100, "image/png")},
        data={"label": "cat"},
    )
    assert response.status_code == 200
    assert response.json() == {"name": "cat.png", "size": 104, "label": "cat"}


def test_encode_response_may_return_a_response_object(serve):
    server = serve("tests.apps:ResponseObjectAPI")
    response = httpx.post(f"{server.url}/predict", json={})
    assert response.status_code == 201
    assert response.text == "created"
    assert response.headers["x-model"] == "v1"


def test_numpy_outputs_are_serialized(serve):
    server = serve("tests.apps:NumpyAPI")
    response = httpx.post(f"{server.url}/predict", json={"scale": 2})
    assert response.json() == {"array": [0.0, 2.0, 4.0]}


def test_info_reports_metadata_and_options(serve):
    server = serve("tests.apps:SquareAPI", model_metadata={"name": "square", "version": 2}, max_batch_size=2)
    info = httpx.get(f"{server.url}/info").json()
    assert info["model"] == {"name": "square", "version": 2}
    assert info["server"]["apis"][0]["max_batch_size"] == 2
    assert info["server"]["apis"][0]["api_path"] == "/predict"


def test_custom_api_path(serve):
    server = serve("tests.apps:SquareAPI", api_path="/v2/square")
    assert httpx.post(f"{server.url}/v2/square", json={"input": 3}).json() == {"output": 9}
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).status_code == 404


def test_generated_client_file_talks_to_the_server(tmp_path):
    port = free_port()
    script = tmp_path / "server.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "import litserve as ls\n"
        "from tests.apps import SquareAPI\n"
        "if __name__ == '__main__':\n"
        f"    ls.LitServer(SquareAPI(), accelerator='cpu').run(port={port})\n"
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        from tests.conftest import wait_for

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=60, message="server health")
        client = tmp_path / "client.py"
        assert client.exists()
        # -S: no site-packages, so the client must work on a bare Python with nothing installed.
        command = [sys.executable, "-S", str(client)]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert "Status: 200" in result.stdout
        assert '{"output":16.0}' in result.stdout
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_client_file_is_not_overwritten(tmp_path):
    from litserve import LitServer
    from litserve.client_file import write_client_file
    from tests.apps import SquareAPI

    existing = tmp_path / "client.py"
    existing.write_text("# mine\n")
    server = LitServer(SquareAPI(), accelerator="cpu")
    write_client_file(8000, server.lit_apis, server.api_options, path=str(existing))
    assert existing.read_text() == "# mine\n"


def test_unused_start_server_helper_is_importable(tmp_path):
    # start_server without waiting returns at once; the process is cleaned up by stop().
    server = start_server(tmp_path, "tests.apps:SquareAPI", wait=False)
    server.wait_ready()
    server.stop()
    assert server.process.returncode is not None
