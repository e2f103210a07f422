"""One access-log line per request, as uvicorn and LitServe write it: on by default, off with ``access_log=False``."""

from __future__ import annotations

import re

import httpx

ACCESS_LINE = re.compile(r'^INFO: +127\.0\.0\.1:\d+ - "(\w+) (\S+) HTTP/1\.1" (\d{3})', re.M)


def access_lines(output: str) -> list:
    return [(method, path, int(status)) for method, path, status in ACCESS_LINE.findall(output)]


def test_every_request_gets_a_line_with_its_method_path_and_status(serve):
    server = serve(
        ["tests.apps:SquareAPI", "tests.apps:StreamAPI"], api_kwargs=[{}, {"api_path": "/stream", "stream": True}]
    )
    before = len(access_lines(server.output()))  # wait_ready's /health polls are logged too
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).json() == {"output": 9}
    assert httpx.post(f"{server.url}/predict?verbose=1", json={}).status_code == 400  # no "input"
    assert httpx.post(f"{server.url}/stream", json={"n": 2}).status_code == 200
    assert httpx.get(f"{server.url}/no-such-path").status_code == 404
    # Each line is written before the response goes out, so it is in the log by now.
    assert access_lines(server.output())[before:] == [
        ("POST", "/predict", 200),
        ("POST", "/predict?verbose=1", 400),
        ("POST", "/stream", 200),
        ("GET", "/no-such-path", 404),
    ]
    assert '"POST /predict HTTP/1.1" 200 OK' in server.output()


def test_access_log_false_writes_none(serve):
    server = serve("tests.apps:SquareAPI", run_kwargs={"access_log": False})
    assert httpx.post(f"{server.url}/predict", json={"input": 3}).status_code == 200
    assert httpx.post(f"{server.url}/predict", json={}).status_code == 400
    assert access_lines(server.output()) == []
    assert "ready: 1 worker" in server.output()  # the rest of the log is still there


def test_the_line_is_uvicorns_whether_written_directly_or_through_a_configured_logger(serve):
    # The API-key redaction filter sends the lines through the logging machinery, as any log_config would.
    direct = serve("tests.apps:SquareAPI")
    logged = serve("tests.apps:SquareAPI", env={"LIT_SERVER_API_KEY": "k3y"}, run_kwargs={"pretty_logs": False})
    for server, headers in ((direct, {}), (logged, {"X-API-Key": "k3y"})):
        before = len(access_lines(server.output()))
        assert httpx.post(f"{server.url}/predict", json={"input": 2}, headers=headers).status_code == 200
        assert access_lines(server.output())[before:] == [("POST", "/predict", 200)]
    line = re.compile(r'^INFO:     127\.0\.0\.1:\d+ - "POST /predict HTTP/1\.1" 200 OK$', re.M)
    assert line.search(direct.output()) and line.search(logged.output())
