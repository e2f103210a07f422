"""The chat playground: one self-contained page (``playground.html``: no build step, nothing fetched from
elsewhere) that talks to the server's own ``/v1/chat/completions``.

``GET /playground`` serves it; ``GET /`` serves it to browsers (``Accept: text/html``) and keeps answering
``litserve running`` to everyone else.
"""

# No ``from __future__ import annotations``: FastAPI must see the real ``Request`` annotation.
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import PlainTextResponse, Response

PAGE = Path(__file__).with_name("playground.html")


@lru_cache(maxsize=1)
def page() -> bytes:
    return PAGE.read_bytes()


def wants_html(accept: str) -> bool:
    """Whether an ``Accept`` header asks for a web page (what browsers send when they open a URL)."""
    return "text/html" in accept.lower()


def add_playground_routes(app: FastAPI, path: str) -> None:
    """``GET path`` (the page) and ``GET /`` (the page for browsers, the usual text for the rest)."""
    if any(getattr(route, "path", None) == path for route in app.routes):
        return
    headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}

    @app.get(path, include_in_schema=False)
    async def playground() -> Response:
        return Response(page(), media_type="text/html; charset=utf-8", headers=headers)

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        if wants_html(request.headers.get("accept", "")):
            return Response(page(), media_type="text/html; charset=utf-8", headers=headers)
        return PlainTextResponse("litserve running")
