"""LitAPIs served as MCP tools."""

from __future__ import annotations

import time

from pydantic import BaseModel

import litserve as ls
from litserve.mcp import MCP


class PowerRequest(BaseModel):
    input: float


class PowerAPI(ls.test_examples.SimpleLitAPI):
    """Squares a number."""

    def __init__(self, **kwargs):
        super().__init__(mcp=MCP(description="Returns the square of a number."), **kwargs)

    def decode_request(self, request: PowerRequest) -> float:
        return request.input


class BatchedPowerAPI(PowerAPI):
    """Squares numbers in batches; each answer says the batch size it ran in."""

    def __init__(self):
        super().__init__(max_batch_size=4, batch_timeout=0.5, api_path="/square")

    def predict(self, inputs):
        return [{"square": x**2, "batch": len(inputs)} for x in inputs]

    def encode_response(self, output):
        return output


class EchoAPI(ls.LitAPI):
    """Echoes its JSON body; sleeps ``sleep`` seconds first."""

    def __init__(self):
        super().__init__(api_path="/tools/echo", mcp=MCP(name="echo"))

    def predict(self, x):
        time.sleep(float(x.get("sleep", 0)))
        return {"echo": x}


class StreamAPI(ls.test_examples.SimpleStreamAPI):
    """Streams three lines about its input."""

    def __init__(self):
        super().__init__(stream=True, api_path="/stream", mcp=MCP())
