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


class _Overlap:
    """Counts hooks running at once in this worker; ``wait_for_peak`` holds until ``peak`` were seen together."""

    def __init__(self) -> None:
        self.inside = 0
        self.peak = 0

    def enter(self) -> None:
        self.inside += 1
        self.peak = max(self.peak, self.inside)

    def leave(self) -> None:
        self.inside -= 1

    async def wait_for_peak(self, peak: int, timeout: float = 20.0) -> None:
        give_up_at = time.monotonic() + timeout
        while self.peak < peak:
            if time.monotonic() > give_up_at:
                raise RuntimeError(f"only {self.peak} requests ran at once, expected {peak}")
            await asyncio.sleep(0.005)


class OverlapAPI(ls.LitAPI):
    """``predict`` returns only once ``peak`` calls have been in it at the same time (batches count once)."""

    def __init__(self, peak: int, cancel_dir: str = "", **options):
        super().__init__(enable_async=True, **options)
        self.peak = peak
        self.cancel_dir = cancel_dir

    def setup(self, device):
        self.overlap = _Overlap()

    async def decode_request(self, request):
        return request

    async def predict(self, x):
        self.overlap.enter()
        try:
            if isinstance(x, dict) and x.get("hang"):
                await asyncio.sleep(3600)
            await self.overlap.wait_for_peak(self.peak)
            return x
        except asyncio.CancelledError:
            Path(self.cancel_dir, f"cancelled-{x['name']}").touch()
            raise
        finally:
            self.overlap.leave()

    async def encode_response(self, output):
        return {"echo": output, "peak": self.overlap.peak}


class OverlapStreamAPI(ls.LitAPI):
    """Streams three items per request; the second only once ``peak`` streams are running together."""

    def __init__(self, peak: int, cancel_dir: str = "", **options):
        super().__init__(enable_async=True, stream=True, **options)
        self.peak = peak
        self.cancel_dir = cancel_dir

    def setup(self, device):
        self.overlap = _Overlap()

    async def predict(self, x):
        self.overlap.enter()
        try:
            yield {"i": 0}
            if x.get("hang"):
                await asyncio.sleep(3600)
            await self.overlap.wait_for_peak(self.peak)
            for i in (1, 2):
                await asyncio.sleep(0)
                yield {"i": i}
        except (asyncio.CancelledError, GeneratorExit):
            Path(self.cancel_dir, f"cancelled-{x['name']}").touch()
            raise
        finally:
            self.overlap.leave()

    async def encode_response(self, outputs):
        async for output in outputs:
            yield output


class OverlapChatAPI(ls.LitAPI):
    """An OpenAI chat API whose async token generator holds its second token until ``peak`` chats run at once."""

    def __init__(self, peak: int, **options):
        super().__init__(enable_async=True, spec=ls.OpenAISpec(), **options)
        self.peak = peak

    def setup(self, device):
        self.overlap = _Overlap()

    async def predict(self, messages):
        self.overlap.enter()
        try:
            yield "hello"
            await self.overlap.wait_for_peak(self.peak)
            yield " world"
        finally:
            self.overlap.leave()


class BlockingChatAPI(ls.LitAPI):
    """An async OpenAI chat API whose token generator blocks the event loop between tokens, as a model's
    forward pass does when it runs in the hook itself."""

    def __init__(self, tokens: int = 40, block_s: float = 0.05, **options):
        super().__init__(enable_async=True, spec=ls.OpenAISpec(), **options)
        self.tokens = tokens
        self.block_s = block_s

    async def predict(self, messages):
        for index in range(self.tokens):
            time.sleep(self.block_s)
            yield f"t{index} "
