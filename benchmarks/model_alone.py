"""Time the benchmark MLP alone (no server): samples/s at a fixed batch size on one intra-op thread.

Runs ``--rounds`` timed rounds of about ``--seconds`` each (and at most ``--max-iters`` forward passes)
after a short warm-up, and reports the median round. ``--json`` prints one JSON object for the harness.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

SERVERS_DIR = Path(__file__).resolve().parent / "servers"


def load_model() -> tuple[torch.nn.Module, object]:
    """Import the shared MLP definition from ``servers/mlp_model.py`` and build it."""
    sys.path.insert(0, str(SERVERS_DIR))
    import mlp_model

    return mlp_model.build_mlp(), mlp_model


def time_round(model: torch.nn.Module, batch: torch.Tensor, seconds: float, max_iters: int) -> list[float]:
    """Run forward passes for about ``seconds`` (at most ``max_iters``); return each pass's duration in s."""
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    with torch.inference_mode():
        while len(durations) < max_iters and time.perf_counter() < deadline:
            start = time.perf_counter()
            model(batch)
            durations.append(time.perf_counter() - start)
    return durations


def measure(batch_size: int, rounds: int, seconds: float, max_iters: int, warmup: int) -> dict[str, object]:
    """Return median samples/s and median per-pass time over ``rounds`` rounds."""
    torch.set_num_threads(1)
    model, mlp_model = load_model()
    batch = mlp_model.sample_batch(batch_size) if batch_size > 1 else mlp_model.sample_batch(1)[0]
    time_round(model, batch, seconds=60.0, max_iters=warmup)
    per_round: list[dict[str, float]] = []
    for _ in range(rounds):
        durations = time_round(model, batch, seconds, max_iters)
        per_round.append(
            {
                "samples_per_s": batch_size * len(durations) / sum(durations),
                "ms_per_pass_p50": 1000 * statistics.median(durations),
            }
        )
    return {
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "samples_per_s": statistics.median(r["samples_per_s"] for r in per_round),
        "ms_per_pass_p50": statistics.median(r["ms_per_pass_p50"] for r in per_round),
        "rounds": per_round,
    }


def main() -> None:
    """Parse flags, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=16, help="1 times a single (64,) vector, as served")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed round")
    parser.add_argument("--max-iters", type=int, default=100_000, help="cap on forward passes per round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed forward passes first")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    result = measure(args.batch_size, args.rounds, args.seconds, args.max_iters, args.warmup)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"MLP alone, batch {result['batch_size']}, {result['threads']} thread(s), torch {result['torch']}: "
        f"{result['samples_per_s']:.0f} samples/s, {result['ms_per_pass_p50']:.3f} ms per forward pass (median)"
    )


if __name__ == "__main__":
    main()
