"""GPU workload: served throughput of a batched BERT-style encoder over the model alone at the same batch size.

The model (``servers/encoder_model.py``) is built from a config with seeded weights; ``large`` is BERT-large
at 512 tokens. For each batch size, rounds alternate between the model alone (a subprocess timing forward
passes on device-resident token ids) and the served model (``servers/litserve_encoder.py``, one worker,
``max_batch_size`` = that batch size, loaded by ``--client-processes`` asyncio clients over
``--connections`` keep-alive connections that POST 512 token ids and read back a 1,024-float embedding).
The ratio of medians is served requests/s over model samples/s; the issue's target is 0.9 or better.

    python benchmarks/gpu.py --out benchmarks/gpu-results.md          # CUDA machine: large, bf16, 16 and 64
    python benchmarks/gpu.py --preset tiny --device cpu --batch-sizes 4 --rounds 1 --duration 2   # smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR / "servers"))

from harness import measure  # noqa: E402
from harness.httpclient import Connection, build_post, run_async  # noqa: E402
from harness.procs import HOST, ServerProcess, free_port, stop_all  # noqa: E402
from harness.report import fmt, markdown_table  # noqa: E402

# --- model alone ---------------------------------------------------------------------------------------


def time_alone(preset: str, dtype: str, device: str, batch_size: int, seconds: float, rounds: int) -> dict:
    """Samples/s of forward passes at ``batch_size`` on ids already on ``device``; median of ``rounds``."""
    import torch
    from encoder_model import DTYPES, PRESETS, build_encoder, sample_tokens

    config = PRESETS[preset]
    model = build_encoder(config, device, DTYPES[dtype])
    tokens = sample_tokens(config, batch_size).to(device)

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rates = []
    with torch.inference_mode():
        for _ in range(3):
            model(tokens)
        sync()
        for _ in range(rounds):
            passes, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                model(tokens)
                passes += 1
                if passes % 8 == 0:
                    sync()  # keep the queue of launched work short, so the clock measures finished work
            sync()
            rates.append(passes * batch_size / (time.perf_counter() - start))
    return {"samples_per_s": statistics.median(rates), "rounds": rates}


# --- load ----------------------------------------------------------------------------------------------


async def _load(port: int, body: bytes, connections: int, seconds: float) -> dict:
    request = build_post(HOST, port, "/predict", body)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        conn = Connection(HOST, port)
        await conn.open()
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status, payload = await conn.post(request)
                latencies.append(time.perf_counter() - start)
                errors += status != 200 or b"embedding" not in payload
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return {"requests": len(latencies), "errors": errors, "seconds": elapsed, "latencies": latencies}


def request_body(preset: str) -> bytes:
    from encoder_model import PRESETS, sample_tokens

    return json.dumps({"input": sample_tokens(PRESETS[preset], 1)[0].tolist()}).encode()


def load(args: argparse.Namespace, port: int, seconds: float) -> dict:
    """Run ``--client-processes`` load processes at once; sum their counts."""
    per_process = max(1, args.connections // args.client_processes)
    argv = [sys.executable, __file__, "load", "--port", str(port), "--preset", args.preset]
    argv += ["--connections", str(per_process), "--duration", str(seconds)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(args.client_processes)]
    results = [json.loads(proc.communicate(timeout=seconds + 120)[0]) for proc in procs]
    latencies = sorted(x for r in results for x in r["latencies"])
    requests = sum(r["requests"] for r in results)
    elapsed = max(r["seconds"] for r in results)
    return {
        "rps": requests / elapsed,
        "errors": sum(r["errors"] for r in results),
        "p50_ms": 1e3 * measure.percentile(latencies, 0.5) if latencies else float("nan"),
        "p99_ms": 1e3 * measure.percentile(latencies, 0.99) if latencies else float("nan"),
    }


# --- rounds --------------------------------------------------------------------------------------------


def alone_round(args: argparse.Namespace, batch_size: int) -> float:
    argv = [sys.executable, __file__, "alone", "--preset", args.preset, "--dtype", args.dtype]
    argv += ["--device", args.device, "--batch-size", str(batch_size), "--duration", str(args.alone_seconds)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])["samples_per_s"]


def served_round(args: argparse.Namespace, batch_size: int, log_dir: Path) -> dict:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "servers" / "litserve_encoder.py"), "--port", str(port)]
    accelerator = "cuda" if args.device == "cuda" else "cpu"
    argv += ["--preset", args.preset, "--dtype", args.dtype, "--accelerator", accelerator]
    argv += ["--max-batch-size", str(batch_size), "--batch-timeout", str(args.batch_timeout)]
    argv += ["--num-api-servers", str(args.num_api_servers)]
    log = log_dir / f"encoder-b{batch_size}-{time.monotonic_ns()}.log"
    with ServerProcess(f"litserve encoder b{batch_size}", argv, port, log) as server:
        server.wait_healthy(300)
        status, payload = measure.check_post(port, "/predict", request_body(args.preset), timeout=120)
        if status != 200 or b"embedding" not in payload:
            raise RuntimeError(f"bad answer {status} {payload[:200]!r}\n{server.log_tail()}")
        load(args, port, args.warmup)
        return load(args, port, args.duration)


def environment(args: argparse.Namespace) -> list[str]:
    import torch

    import litserve

    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" and torch.cuda.is_available() else "none"
    return [
        f"date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}; "
        f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, GPU: {gpu}",
        f"Python {platform.python_version()}, torch {torch.__version__}, litserve from `{litserve.__file__}`",
        f"preset {args.preset}, {args.dtype}, device {args.device}, batch_timeout {args.batch_timeout} s, "
        f"{args.connections} connections from {args.client_processes} client process(es), "
        f"{args.num_api_servers} API server process(es), {args.rounds} rounds of {args.duration} s",
    ]


def bench(args: argparse.Namespace) -> str:
    log_dir = Path(tempfile.mkdtemp(prefix="litserve-gpu-bench-"))
    rows, raw = [], []
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        alone, served = [], []
        for round_index in range(args.rounds):
            order = ["alone", "served"] if round_index % 2 == 0 else ["served", "alone"]
            for kind in order:
                print(f"[gpu] batch {batch_size} round {round_index + 1}: {kind}", file=sys.stderr, flush=True)
                if kind == "alone":
                    alone.append(alone_round(args, batch_size))
                    raw.append(f"batch {batch_size} round {round_index + 1}: alone {alone[-1]:,.0f} samples/s")
                else:
                    served.append(served_round(args, batch_size, log_dir))
                    r = served[-1]
                    raw.append(
                        f"batch {batch_size} round {round_index + 1}: served {r['rps']:,.0f} req/s "
                        f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms errors {r['errors']}"
                    )
        alone_median = statistics.median(alone)
        served_median = statistics.median(r["rps"] for r in served)
        ratio = served_median / alone_median
        rows.append(
            [
                str(batch_size),
                fmt(served_median, 0),
                fmt(statistics.median(r["p50_ms"] for r in served), 1),
                fmt(statistics.median(r["p99_ms"] for r in served), 1),
                str(sum(r["errors"] for r in served)),
                fmt(alone_median, 0),
                fmt(ratio),
                "yes" if ratio >= 0.9 and not any(r["errors"] for r in served) else "no",
            ]
        )
    headers = ["batch", "served req/s", "p50 ms", "p99 ms", "errors", "model alone samples/s", "ratio", ">= 0.9"]
    lines = ["# GPU benchmark: batched encoder, served vs alone", ""]
    lines += [f"- {line}" for line in environment(args)]
    lines += ["", markdown_table(headers, rows), "", "Per round:", "", "```", *raw, "```", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "alone", "load"])
    parser.add_argument("--preset", default="large")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--device", default="cuda", help="cuda or cpu")
    parser.add_argument("--batch-sizes", default="16,64", help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=16, help="(alone mode)")
    parser.add_argument("--batch-timeout", type=float, default=0.01)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured load run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measured run")
    parser.add_argument("--alone-seconds", type=float, default=3.0, help="seconds of each model-alone round")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--client-processes", type=int, default=4)
    parser.add_argument("--num-api-servers", type=int, default=2)
    parser.add_argument("--port", type=int, default=0, help="(load mode)")
    parser.add_argument("--out", help="also write the markdown report here")
    args = parser.parse_args()
    if args.mode == "alone":
        print(json.dumps(time_alone(args.preset, args.dtype, args.device, args.batch_size, args.duration, 3)))
        return
    if args.mode == "load":
        body = request_body(args.preset)
        print(json.dumps(run_async(_load(args.port, body, args.connections, args.duration))))
        return
    try:
        report = bench(args)
    finally:
        stop_all()
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
