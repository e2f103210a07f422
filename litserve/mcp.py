"""MCP: serve a LitAPI as a Model Context Protocol tool at ``/mcp/`` (streamable HTTP, stateless).

A tool call is answered by sending its arguments, as the JSON body, through the API's own route: the
same workers, batching, timeouts, API-key check and error answers as ``POST api_path``.

Needs the optional dependencies: ``pip install 'litserve[mcp]'``.

Example::

    class PowerRequest(BaseModel):
        input: float

    class PowerAPI(ls.test_examples.SimpleLitAPI):
        def decode_request(self, request: PowerRequest):
            return request.input

    api = PowerAPI(mcp=MCP(description="Returns the square of a number."))
    ls.LitServer(api).run(port=8000)  # tool "predict" with arguments {"input": 4.0} -> {"output": 16.0}
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any, AsyncIterator, Dict, List, Optional, Tuple

import orjson
from pydantic import BaseModel

from litserve.api import request_annotation

if TYPE_CHECKING:
    from litserve.api import LitAPI

logger = logging.getLogger("litserve")

MCP_PATHS = ("/mcp", "/mcp/")
SERVER_NAME = "litserve"
_MISSING = "MCP support needs the optional dependencies: pip install 'litserve[mcp]'"
_ANY_OBJECT = {"type": "object", "additionalProperties": True}


def _require_mcp_sdk() -> None:
    try:
        import mcp.server.lowlevel  # noqa: F401
        import mcp.server.streamable_http_manager  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"{_MISSING} ({exc})") from None


class MCP:
    """Make a LitAPI an MCP tool: ``LitAPI(mcp=MCP(description="..."))``.

    Args:
        description: what the tool does, for the model that picks tools. Default: the LitAPI's docstring.
        input_schema: JSON schema of the tool's arguments. Default: the schema of the pydantic model that
            ``decode_request`` is annotated with (any JSON object when there is none).
        name: the tool's name. Default: the API's ``api_path`` without the leading ``/`` (``/`` -> ``_``).
    """

    def __init__(
        self,
        description: Optional[str] = None,
        input_schema: Optional[Dict[str, Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        _require_mcp_sdk()
        if input_schema is not None and not isinstance(input_schema, dict):
            raise ValueError(f"input_schema must be a JSON schema dict, got {type(input_schema).__name__}")
        self.description = description
        self.input_schema = input_schema
        self.name = _tool_name(name) if name else None

    def tool(self, lit_api: LitAPI, api_path: str) -> McpTool:
        """The tool this API is, served on ``api_path``."""
        model = _request_model(lit_api)
        schema = self.input_schema
        if schema is None:
            schema = model.model_json_schema() if model is not None else dict(_ANY_OBJECT)
        description = self.description or (type(lit_api).__doc__ or "").strip() or f"Calls POST {api_path}"
        return McpTool(self.name or _tool_name(api_path), description, schema, api_path, model)


class McpTool:
    """One tool: its MCP description and the route that answers it."""

    def __init__(self, name: str, description: str, input_schema: dict, api_path: str, model: Any) -> None:
        self.name = name
        self.description = description
        self.input_schema = input_schema
        self.api_path = api_path
        self.model = model

    def body(self, arguments: Dict[str, Any]) -> bytes:
        """The request body for ``arguments``; LitServe's ``{"request": {...}}`` form is unwrapped."""
        if self.model is not None and len(arguments) == 1:
            key, value = next(iter(arguments.items()))
            if key == "request" and key not in self.model.model_fields and isinstance(value, dict):
                arguments = value
        return orjson.dumps(arguments)


def _tool_name(path: str) -> str:
    return path.lstrip("/").replace("/", "_") or "predict"


def _request_model(lit_api: LitAPI) -> Any:
    annotation = request_annotation(lit_api)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def collect_tools(lit_apis: List[LitAPI], api_paths: List[str]) -> List[McpTool]:
    """The tools of the APIs that have ``mcp=MCP(...)``; names must be unique."""
    tools = []
    for lit_api, path in zip(lit_apis, api_paths):
        spec = getattr(lit_api, "mcp", None)
        if spec is None:
            continue
        if not isinstance(spec, MCP):
            raise ValueError(f"{type(lit_api).__name__}: mcp must be an MCP(...) instance, got {spec!r}")
        tools.append(spec.tool(lit_api, path))
    names = [tool.name for tool in tools]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"two APIs are the MCP tool {name!r}: give one of them MCP(name=...)")
    return tools


class McpEndpoint:
    """The ASGI handler of ``/mcp/``. ``app`` (set once the app is built) answers the tool calls."""

    def __init__(self, tools: List[McpTool]) -> None:
        _require_mcp_sdk()
        from mcp.server.lowlevel import Server
        from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

        self.tools = {tool.name: tool for tool in tools}
        self.app: Any = None
        self.server = Server(SERVER_NAME)
        self.server.list_tools()(self._list_tools)
        self.server.call_tool(validate_input=False)(self._call_tool)  # the route validates, as for HTTP
        self.sessions = StreamableHTTPSessionManager(self.server, json_response=True, stateless=True)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Runs while the API process serves (the SDK needs a task group for its requests)."""
        async with self.sessions.run():
            yield

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        await self.sessions.handle_request(scope, receive, send)

    async def _list_tools(self) -> list:
        from mcp import types

        return [
            types.Tool(name=tool.name, description=tool.description, inputSchema=tool.input_schema)
            for tool in self.tools.values()
        ]

    async def _call_tool(self, name: str, arguments: Dict[str, Any]) -> Any:
        from mcp import types

        tool = self.tools.get(name)
        if tool is None:
            return _error_result(f"Unknown tool {name!r}; tools: {', '.join(self.tools) or 'none'}")
        status, body = await self._post(tool.api_path, tool.body(arguments or {}), self._caller_headers())
        text = body.decode(errors="replace")
        if status != 200:
            return _error_result(f"{tool.api_path} answered {status}: {text}")
        result = types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=False)
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            value = None  # a stream of JSON lines, or plain text
        if isinstance(value, dict):
            result.structuredContent = value
        return result

    def _caller_headers(self) -> List[Tuple[bytes, bytes]]:
        """The MCP request's headers minus the body's, so the route checks the caller's credentials."""
        try:
            request = self.server.request_context.request
        except LookupError:
            return []
        skip = {b"content-type", b"content-length", b"accept", b"transfer-encoding"}
        headers = getattr(request, "headers", None)
        raw = getattr(headers, "raw", None) or []
        return [(name, value) for name, value in raw if name.lower() not in skip]

    async def _post(self, path: str, body: bytes, headers: List[Tuple[bytes, bytes]]) -> Tuple[int, bytes]:
        """Send one request through the app in-process; returns (status, whole body)."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                *headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("mcp", 0),
            "server": ("litserve", 0),
        }
        import anyio

        done = anyio.Event()
        sent = False

        async def receive() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # the request is whole; the "client" stays until the reply is complete
            return {"type": "http.disconnect"}

        status = 500
        parts: List[bytes] = []

        async def send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        return status, b"".join(parts)


def _error_result(message: str) -> Any:
    from mcp import types

    return types.CallToolResult(content=[types.TextContent(type="text", text=message)], isError=True)
