"""An ``enable_async`` litserve server whose ``async def predict`` awaits ``--delay`` seconds, one worker."""

from __future__ import annotations

import argparse
import asyncio

import litserve as ls


class AsyncSleepAPI(ls.LitAPI):
    """Waits like a call to a remote model would, then squares the input."""

    def __init__(self, delay: float) -> None:
        super().__init__(enable_async=True)
        self.delay = delay

    async def decode_request(self, request: dict) -> float:
        """Read the float input."""
        return float(request["input"])

    async def predict(self, x: float) -> float:
        """Await, then square."""
        await asyncio.sleep(self.delay)
        return x**2

    async def encode_response(self, output: float) -> dict:
        """Wrap the result."""
        return {"output": output}


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(AsyncSleepAPI(args.delay), accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
