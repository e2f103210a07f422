"""litserve server whose predict takes a fixed time: POST /predict {"input": x} -> {"output": x} after
``--service-ms`` milliseconds, one worker, so its capacity is known (1000 / service-ms requests a second)."""

from __future__ import annotations

import argparse
import time

import litserve as ls


class SleepAPI(ls.LitAPI):
    """A model that costs a fixed time and no CPU."""

    def __init__(self, service_s: float) -> None:
        super().__init__()
        self.service_s = service_s

    def setup(self, device: str) -> None:
        """Nothing to load."""

    def predict(self, request: dict) -> dict:
        """Wait the service time, then echo the input."""
        time.sleep(self.service_s)
        return {"output": request["input"]}


def main() -> None:
    """Parse the options and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--max-queue-size", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(
        SleepAPI(args.service_ms / 1000), accelerator="cpu", timeout=30, max_queue_size=args.max_queue_size
    )
    server.run(host="127.0.0.1", port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
