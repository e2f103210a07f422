"""LitAPIs and loggers for the admin, logger and async end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import litserve as ls


class SetupRecorderAPI(ls.LitAPI):
    """Each worker leaves a file named after its API path and pid in ``record_dir`` once set up."""

    def __init__(self, record_dir: str, **options):
        super().__init__(**options)
        self.record_dir = record_dir

    def setup(self, device):
        name = self.api_path.strip("/").replace("/", "_")
        Path(self.record_dir, f"{name}-{os.getpid()}").touch()

    def predict(self, x):
        return {"pid": os.getpid()}


class GateAPI(ls.LitAPI):
    """Holds each request until ``gate`` exists, so a test can shut down while one is in flight."""

    def __init__(self, gate: str, **options):
        super().__init__(**options)
        self.gate = gate

    def predict(self, x):
        Path(self.gate + ".started").touch()
        while not Path(self.gate).exists():
            time.sleep(0.01)
        return {"finished": True}


class AsyncSleepAPI(ls.LitAPI):
    """``async def`` hooks that wait ``delay`` seconds: concurrent requests overlap in one worker."""

    def __init__(self, delay: float = 0.2, **options):
        super().__init__(enable_async=True, **options)
        self.delay = delay

    async def decode_request(self, request):
        await asyncio.sleep(0)
        return request["input"]

    async def predict(self, x):
        await asyncio.sleep(self.delay)
        return {"output": x, "pid": os.getpid()}

    async def encode_response(self, output):
        return output
