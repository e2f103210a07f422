"""Hello-world litserve server: POST /predict with {"input": x} returns {"output": x**2}, one worker."""

from __future__ import annotations

import argparse
from typing import Any

import litserve as ls


class HelloAPI(ls.LitAPI):
    """The x**2 'model' behind the litserve API."""

    def setup(self, device: str) -> None:
        """Install the trivial model."""
        self.model = lambda x: x**2

    def decode_request(self, request: dict) -> float:
        """Read the float input."""
        return float(request["input"])

    def predict(self, x: float) -> float:
        """Square it."""
        return self.model(x)

    def encode_response(self, output: float) -> dict[str, Any]:
        """Wrap the result."""
        return {"output": output}


def main() -> None:
    """Parse ``--port`` and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--access-log", action="store_true", help="log each request (at info level)")
    args = parser.parse_args()
    log_level = "info" if args.access_log else args.log_level
    server = ls.LitServer(HelloAPI(), accelerator="cpu", workers_per_device=1, timeout=30)
    server.run(
        host=args.host, port=args.port, log_level=log_level, access_log=args.access_log, generate_client_file=False
    )


if __name__ == "__main__":
    main()
