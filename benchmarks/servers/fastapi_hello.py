"""Plain FastAPI reference server: POST /predict with {"input": x} returns {"output": x**2}.

One process under uvicorn with uvloop and httptools, access log off (``--access-log``: on, at info level).
GET /health returns "ok" so the harness can wait for it the same way it waits for litserve.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    """Readiness probe, same path and body as litserve's."""
    return "ok"


@app.post("/predict")
async def predict(request: Request) -> dict:
    """Square the input inline in the event loop."""
    payload = await request.json()
    x = float(payload["input"])
    return {"output": x**2}


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--access-log", action="store_true", help="log each request (at info level)")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=args.access_log,
        log_level="info" if args.access_log else "warning",
        workers=1,
    )


if __name__ == "__main__":
    main()
