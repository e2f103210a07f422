"""Plain FastAPI reference for target 4: the benchmark MLP inline in an ``async def`` route, no worker process.

POST /predict with {"input": [64 floats]} returns {"output": [10 floats]}; one intra-op thread, like
``litserve_mlp.py``. It shows what serving the model costs over ``model_alone.py`` with no inter-process hop.
"""

from __future__ import annotations

import argparse

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from mlp_model import build_mlp

torch.set_num_threads(1)
model = build_mlp()
app = FastAPI()


@app.get("/health", response_class=PlainTextResponse)
async def health() -> str:
    """Readiness probe, same path and body as litserve's."""
    return "ok"


@app.post("/predict")
async def predict(request: Request) -> dict:
    """Run the MLP on one vector inline in the event loop."""
    payload = await request.json()
    with torch.inference_mode():
        output = model(torch.tensor(payload["input"], dtype=torch.float32))
    return {"output": output.tolist()}


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    uvicorn.run(
        app, host=args.host, port=args.port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
