"""A server with every kind of route, for the API-key coverage test; run it as a script to serve it on $PORT.

Predict routes (one with its own ``authorize`` hook), OpenAI chat and embeddings (with ``/v1/models``),
metrics, info, OpenAPI and docs, and routes added after the server was built, as MCP, logger mounts or a
user's own code would add them (a websocket among them). Its header timeout is 1 s.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.websockets import WebSocket

import litserve as ls
from tests.apps import AuthorizeAPI, SquareAPI
from tests.apps_specs import ChatAPI, EmbedAPI


async def _hello(request) -> PlainTextResponse:
    return PlainTextResponse("mounted")


def build_server() -> ls.LitServer:
    apis = [SquareAPI(api_path="/square"), AuthorizeAPI(api_path="/authorized"), ChatAPI(), EmbedAPI()]
    server = ls.LitServer(apis, accelerator="cpu", model_metadata={"name": "every route"}, request_header_timeout=1)

    @server.app.get("/custom")
    async def custom() -> dict:
        return {"custom": True}

    @server.app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    server.app.mount("/mounted", Starlette(routes=[Route("/", _hello), Route("/deep", _hello)]))
    return server


if __name__ == "__main__":
    build_server().run(port=int(os.environ["PORT"]), host="127.0.0.1", generate_client_file=False, log_level="debug")
