"""Streaming litserve server: POST /predict with {"n": N} streams N lines, each the JSON object {"i": i}."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import litserve as ls

MAX_ITEMS = 1_000_000


class StreamAPI(ls.LitAPI):
    """predict yields N small dicts; encode_response yields one {"i": i} per item."""

    def setup(self, device: str) -> None:
        """Nothing to load."""

    def decode_request(self, request: dict) -> int:
        """Read how many items to stream, capped at MAX_ITEMS."""
        return max(0, min(int(request.get("n", 10)), MAX_ITEMS))

    def predict(self, n: int) -> Iterator[dict[str, int]]:
        """Yield n small dicts."""
        for i in range(n):
            yield {"i": i}

    def encode_response(self, outputs: Iterator[dict[str, int]]) -> Iterator[dict[str, Any]]:
        """Yield one JSON-able object per item."""
        for item in outputs:
            yield {"i": item["i"]}


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(StreamAPI(), accelerator="cpu", stream=True, workers_per_device=1, timeout=60)
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
