"""litserve server for the GPU benchmark's encoder: {"input": [token ids]} -> {"embedding": [floats]}, batched.

Requests are decoded to 1-D int64 tensors on the CPU; the library's default ``batch`` stacks them, ``predict``
moves the batch to the device and back, and the default ``unbatch`` splits the pooled embeddings.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
from encoder_model import DTYPES, PRESETS, build_encoder

import litserve as ls


class EncoderAPI(ls.LitAPI):
    """Serve the seeded encoder on the worker's device."""

    def __init__(self, preset: str, dtype: str) -> None:
        super().__init__()
        self.config = PRESETS[preset]
        self.dtype = DTYPES[dtype]

    def setup(self, device: str) -> None:
        """Build the model on this worker's device."""
        self.device = device
        self.model = build_encoder(self.config, device, self.dtype)

    def decode_request(self, request: dict) -> torch.Tensor:
        """Token ids, exactly ``seq_len`` of them, as a 1-D int64 tensor."""
        ids = request["input"]
        if len(ids) != self.config.seq_len:
            raise ValueError(f"send exactly {self.config.seq_len} token ids, got {len(ids)}")
        return torch.tensor(ids, dtype=torch.int64)

    def predict(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Pooled embeddings of a (B, seq_len) batch, or of one (seq_len,) request."""
        single = token_ids.dim() == 1
        batch = token_ids.unsqueeze(0) if single else token_ids
        with torch.inference_mode():
            pooled = self.model(batch.to(self.device, non_blocking=True)).float().cpu()
        return pooled[0] if single else pooled

    def encode_response(self, output: torch.Tensor) -> dict[str, Any]:
        """The embedding as a list of floats."""
        return {"embedding": output.tolist()}


def main() -> None:
    """Parse flags and serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="large")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--num-api-servers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    server = ls.LitServer(
        EncoderAPI(args.preset, args.dtype),
        accelerator=args.accelerator,
        devices=1,
        max_batch_size=args.max_batch_size,
        batch_timeout=args.batch_timeout,
        timeout=60,
    )
    server.run(
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        num_api_servers=args.num_api_servers,
        generate_client_file=False,
    )


if __name__ == "__main__":
    main()
