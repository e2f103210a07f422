"""litserve server for the benchmark MLP: {"input": [64 floats]} -> {"output": [10 floats]}, batched.

Requests are decoded to 1-D tensors; the library's default ``batch`` stacks them and the default ``unbatch``
splits the output along the first axis. ``--max-batch-size 1`` turns batching off (used for latency).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from mlp_model import build_mlp

import litserve as ls


class MLPAPI(ls.LitAPI):
    """Serve the seeded MLP on one intra-op thread."""

    def setup(self, device: str) -> None:
        """Build the model; one intra-op thread like ``model_alone.py``."""
        torch.set_num_threads(1)
        self.model = build_mlp().to(device)

    def decode_request(self, request: dict) -> torch.Tensor:
        """Turn the 64 floats into a 1-D float32 tensor."""
        return torch.tensor(request["input"], dtype=torch.float32)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Run the forward pass (a (B, 64) batch or one (64,) vector)."""
        with torch.inference_mode():
            return self.model(x)

    def encode_response(self, output: torch.Tensor) -> dict[str, Any]:
        """Return the 10 logits as a list."""
        return {"output": output.tolist()}


def main() -> None:
    """Parse flags and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout", type=float, default=0.005)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(
        MLPAPI(),
        accelerator="cpu",
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        workers_per_device=1,
        timeout=30,
    )
    server.run(host=args.host, port=args.port, log_level=args.log_level, generate_client_file=False)


if __name__ == "__main__":
    main()
