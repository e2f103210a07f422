"""Property-based fuzzing of real servers with schemathesis: whatever a client sends, no 5xx.

Schemathesis reads each server's ``/openapi.json`` and sends requests built from it, both ones that fit
the schema and ones that break it (wrong types, missing fields, odd content types, ...). The server must
answer every one of them without a server error. Example counts are small so the file stays quick; a
failure prints the request that caused it, to replay with curl.
"""

from __future__ import annotations

import json
import re
import socket
from collections import Counter
from typing import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.conftest import REPO_ROOT, RunningServer, start_script, start_server

EXAMPLES = REPO_ROOT / "examples"
MAX_EXAMPLES = 60  # per server and generation mode (valid, invalid), over all its operations

# A 500 that names one of these hooks comes from the user's code (e.g. hello world's ``request["input"]`` on
# ``{}``, or ``x**2`` overflowing), which litserve reports as LitServe does; any other 5xx is litserve's own.
USER_HOOKS = ("decode_request", "predict", "encode_response", "batch", "unbatch")
HOOK_FAILED = re.compile(r"^Internal server error: (\w+) failed \(\w+\)\. See the server log\.$")

SERVERS = {
    "hello_world": lambda tmp: start_script(tmp, EXAMPLES / "hello_world" / "server.py"),
    "pydantic": lambda tmp: start_script(tmp, EXAMPLES / "pydantic" / "server.py"),
    "openai": lambda tmp: start_server(
        tmp, "litserve.test_examples.openai_spec_example:TestAPI", spec={"__spec__": "openai"}
    ),
}


@pytest.fixture(scope="module", params=sorted(SERVERS))
def running(request, tmp_path_factory) -> Iterator[RunningServer]:
    server = SERVERS[request.param](tmp_path_factory.mktemp(request.param))
    server.name = request.param
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_request_built_from_the_schema_gets_a_server_error(running, mode):
    schema = schemathesis.openapi.from_url(f"{running.url}/openapi.json", timeout=10)
    # schemathesis's pytest integration (``from_fixture`` + ``parametrize``) does not run on pytest 9 (it sets
    # ``Node._nodeid``), so the cases come from its Hypothesis strategy, as its docs describe for plain tests.
    strategy = schema.as_strategy(generation_mode=mode)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis/ directory in the repository
        derandomize=True,  # the same examples every run
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case) -> None:
        response = case.call(timeout=30)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error_of_litserve])

    statuses: Counter = Counter()
    check()
    assert sum(statuses.values()) >= MAX_EXAMPLES // 2, statuses  # the cases did reach the server
    if mode == GenerationMode.NEGATIVE:
        assert any(400 <= status < 500 for status in statuses), statuses
    assert running.process.poll() is None, running.output()


# Bodies and requests no schema describes (test_reliability.py sends more of them to a pydantic API).
HOSTILE_BODIES = [
    b"",
    b"{",
    b"}",
    b"\xff\xfe" * 50,
    b"\x00" * 64,
    b"null",
    b"true",
    b"[]",
    b'"text"',
    b"-0",
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
    b'{"input": 1, "input": "twice"}',
    b'{"input": 1' + b"0" * 100_000 + b"}",
    b'{"input": "' + b"x" * 1_000_000 + b'"}',
    b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(50_000)) + b"}",
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": "maybe"}',
    b'{"model": "m", "messages": null, "n": -1, "temperature": "hot"}',
]
HOSTILE_CONTENT_TYPES = [
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "*/*",
    "\u00e9/\u00e9",
]


def test_hostile_requests_get_a_client_error_and_the_server_keeps_serving(running):
    path = "/v1/chat/completions" if running.name == "openai" else "/predict"
    url = f"{running.url}{path}"
    validated = running.name != "hello_world"  # pydantic request models: every hostile body is a 4xx
    json_type = {"content-type": "application/json"}
    with httpx.Client(timeout=30) as http:
        for body in HOSTILE_BODIES:
            assert_no_litserve_error(http.post(url, content=body, headers=json_type), body, validated)
        for content_type in HOSTILE_CONTENT_TYPES:
            body = b'{"input": "\xff"}'
            response = http.post(url, content=body, headers={"content-type": content_type.encode("latin-1")})
            assert_no_litserve_error(response, content_type, validated)
        for method in ("GET", "PUT", "DELETE", "PATCH"):
            assert http.request(method, url).status_code in (404, 405), method
        weird = http.post(f"{url}?input=%ff&x=%00", json={"input": 1}, headers={"x-api-key": "\u00e9".encode()})
        assert_no_litserve_error(weird, "query string and header", validated=False)
    # Lies about the body at the HTTP level: a shorter body than announced, then the client goes quiet.
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
        sock.sendall(head.encode() + b'{"input": 1}')
        sock.shutdown(socket.SHUT_WR)
        answer = sock.recv(65536)
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:200]
    assert httpx.get(f"{running.url}/health").status_code == 200


def test_a_lone_surrogate_in_a_body_is_a_client_error(serve_script):
    server = serve_script(EXAMPLES / "pydantic" / "server.py")
    # "\ud800" is a valid JSON escape but no Unicode character; Python's json module accepts it.
    body = b'{"input": "\\ud800"}'
    response = httpx.post(f"{server.url}/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["detail"]


def assert_no_litserve_error(response: httpx.Response, what, validated: bool) -> None:
    """A 4xx; or, where the API validates nothing (hello world), possibly a 500 from one of the user's hooks."""
    shown = what[:40] if isinstance(what, bytes) else what
    if validated:
        assert 400 <= response.status_code < 500, (shown, response.status_code, response.text[:300])
    elif response.status_code >= 500:
        message = _error_message(response.content) or ""
        match = HOOK_FAILED.match(message)
        assert response.status_code == 500 and match and match.group(1) in USER_HOOKS, (
            shown,
            response.status_code,
            response.text[:300],
        )


def not_a_server_error_of_litserve(ctx, response, case) -> None:
    """A schemathesis check: no 5xx, except a 500 that reports an exception raised by a user hook."""
    if response.status_code < 500:
        return
    message = _error_message(response.content)
    match = HOOK_FAILED.match(message or "")
    if response.status_code == 500 and match is not None and match.group(1) in USER_HOOKS:
        return
    raise AssertionError(
        f"server error {response.status_code}: {response.content[:500]!r}\nreproduce: {case.as_curl_command()}"
    )


def _error_message(body: bytes):
    """The message of litserve's error bodies: ``{"detail": ...}``, or OpenAI's ``{"error": {"message": ...}}``."""
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("error"), dict):
        return payload["error"].get("message")
    return payload.get("detail")


def test_the_fuzzed_servers_still_answer(running):
    """After the fuzzing (same module-scoped server), a plain request still works and nothing crashed."""
    if "/v1/chat/completions" in httpx.get(f"{running.url}/openapi.json").text:
        body = {"model": "any", "messages": [{"role": "user", "content": "hi"}]}
        response = httpx.post(f"{running.url}/v1/chat/completions", json=body, timeout=30)
    else:
        response = httpx.post(f"{running.url}/predict", json={"input": 4.0}, timeout=30)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{running.url}/health").status_code == 200
