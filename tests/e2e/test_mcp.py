"""MCP at /mcp/: tools listed and called with raw JSON-RPC and with the MCP SDK's client, through the real route."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def rpc(server, method: str, params: dict = None, headers: dict = None, rpc_id: int = 1) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": rpc_id, "method": method, "params": params or {}}
    return httpx.post(f"{server.url}/mcp/", json=body, headers={**HEADERS, **(headers or {})}, timeout=30)


def call(server, name: str, arguments: dict, headers: dict = None) -> dict:
    response = rpc(server, "tools/call", {"name": name, "arguments": arguments}, headers)
    assert response.status_code == 200, response.text
    return response.json()["result"]


@pytest.fixture
def tools_server(serve):
    return serve(["tests.apps_mcp:PowerAPI", "tests.apps_mcp:EchoAPI"], timeout=2)


def test_initialize_and_list_tools_with_raw_json_rpc(tools_server):
    init = rpc(
        tools_server,
        "initialize",
        {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    )
    assert init.status_code == 200
    assert init.json()["result"]["capabilities"]["tools"] is not None
    tools = {tool["name"]: tool for tool in rpc(tools_server, "tools/list").json()["result"]["tools"]}
    assert set(tools) == {"predict", "echo"}, "names come from api_path unless given"
    assert tools["predict"]["description"] == "Returns the square of a number."
    assert tools["predict"]["inputSchema"]["properties"]["input"]["type"] == "number"
    assert tools["predict"]["inputSchema"]["required"] == ["input"]
    assert tools["echo"]["description"] == "Echoes its JSON body; sleeps ``sleep`` seconds first."
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert httpx.post(f"{tools_server.url}/mcp/", json=note, headers=HEADERS).status_code == 202
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}
    bare = httpx.post(f"{tools_server.url}/mcp", json=body, headers=HEADERS)
    assert bare.status_code == 200 and bare.json()["id"] == 7, "/mcp without the slash works too"


def test_tool_calls_run_through_the_route(tools_server):
    result = call(tools_server, "predict", {"input": 4.0})
    assert result["isError"] is False
    assert json.loads(result["content"][0]["text"]) == {"output": 16.0}
    assert result["structuredContent"] == {"output": 16.0}
    litserve_style = call(tools_server, "predict", {"request": {"input": 3.0}})
    assert litserve_style["structuredContent"] == {"output": 9.0}, "LitServe's wrapped arguments work too"
    assert httpx.post(f"{tools_server.url}/predict", json={"input": 4.0}).json() == {"output": 16.0}


def test_tool_errors_are_tool_results_that_say_why(tools_server):
    invalid = call(tools_server, "predict", {"input": "four"})
    assert invalid["isError"] is True and "422" in invalid["content"][0]["text"]
    assert "input" in invalid["content"][0]["text"]
    slow = call(tools_server, "echo", {"sleep": 5})
    assert slow["isError"] is True and "504" in slow["content"][0]["text"], "the server's timeout applies"
    unknown = call(tools_server, "nope", {})
    assert unknown["isError"] is True and "nope" in unknown["content"][0]["text"]


def test_concurrent_tool_calls_are_batched_like_http(serve):
    server = serve("tests.apps_mcp:BatchedPowerAPI")

    async def main() -> list:
        async with httpx.AsyncClient(timeout=30) as client:
            bodies = [
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {"name": "square", "arguments": {"input": i}},
                }
                for i in range(4)
            ]
            replies = await asyncio.gather(
                *(client.post(f"{server.url}/mcp/", json=b, headers=HEADERS) for b in bodies)
            )
            return [r.json()["result"]["structuredContent"] for r in replies]

    results = asyncio.run(main())
    assert [r["square"] for r in results] == [0.0, 1.0, 4.0, 9.0]
    assert max(r["batch"] for r in results) > 1, "tool calls share batches with each other"


def test_a_streaming_api_answers_with_its_whole_stream(serve):
    server = serve("tests.apps_mcp:StreamAPI")
    tool = rpc(server, "tools/list").json()["result"]["tools"][0]
    assert tool["name"] == "stream" and tool["description"] == "Streams three lines about its input."
    assert tool["inputSchema"]["type"] == "object", "no pydantic annotation: any JSON object"
    result = call(server, "stream", {"input": "hi"})
    assert result["isError"] is False
    lines = result["content"][0]["text"].splitlines()
    assert [json.loads(line) for line in lines] == [{"output": f"{i}: hi"} for i in range(3)]


def test_tools_with_two_api_server_processes(serve):
    server = serve("tests.apps_mcp:PowerAPI", run_kwargs={"num_api_servers": 2})
    results = [call(server, "predict", {"input": float(i)})["structuredContent"] for i in range(6)]
    assert results == [{"output": float(i * i)} for i in range(6)]


def test_api_key_is_required_for_tool_calls(serve):
    server = serve("tests.apps_mcp:PowerAPI", env={"LIT_SERVER_API_KEY": "sk-mcp"})
    denied = call(server, "predict", {"input": 2.0})
    assert denied["isError"] is True and "401" in denied["content"][0]["text"]
    allowed = call(server, "predict", {"input": 2.0}, headers={"X-API-Key": "sk-mcp"})
    assert allowed["structuredContent"] == {"output": 4.0}


def test_the_mcp_sdk_client(tools_server):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def main():
        async with streamable_http_client(f"{tools_server.url}/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                names = sorted(tool.name for tool in (await session.list_tools()).tools)
                result = await session.call_tool("predict", {"input": 5})
                return names, result

    names, result = asyncio.run(main())
    assert names == ["echo", "predict"]
    assert result.isError is False and result.structuredContent == {"output": 25.0}


def test_a_clear_error_when_the_mcp_extra_is_missing():
    import subprocess
    import sys

    code = "import sys; sys.modules['mcp'] = None\nfrom litserve.mcp import MCP\nMCP(description='x')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "pip install 'litserve[mcp]'" in result.stderr
