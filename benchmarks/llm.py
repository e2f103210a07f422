"""LLM serving: continuous batching (``litserve llm``) against static batching and one request at a time.

All three serve the same seeded model on this library: ``continuous`` is ``LLMAPI`` (``litserve llm``,
LightLLM's ``/generate_stream``), ``static`` is transformers ``generate`` in a batched LitAPI
(``servers/llm_static.py``, batch 8), ``single`` is the same LitAPI one request at a time. The workload is
synthesised offline with a seed: ShareGPT-like log-normal lengths (prompts median ~40 tokens, outputs median
~30 with a tail to 160), greedy, EOS ignored so every system does the same work; sent as a burst (all at once)
and as Poisson arrivals. Metrics follow vLLM's benchmark definitions: TTFT = request sent to first token;
TPOT = (latency - TTFT) / (output tokens - 1) per request; ITL = gaps between consecutive tokens, pooled; a
non-streaming reply's TTFT is its latency. Figures are medians over rounds; the order of the systems rotates
each round and only one server runs at a time. Servers run with ``--threads`` intra-op threads (default 1:
on a shared 2-core machine a second spinning thread makes every matmul an order of magnitude slower).

    python benchmarks/llm.py --rounds 3 --out /tmp/llm.md                         # CPU, 48-request burst
    python benchmarks/llm.py --accelerator cuda --hidden-size 2048 --num-layers 16 \\
        --num-heads 16 --requests 256 --poisson-rate 16 --out /tmp/llm-gpu.md      # GPU, ~1B parameters
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(REPO_ROOT))

from harness.procs import HOST, ServerProcess, free_port, stop_all  # noqa: E402
from harness.report import fmt, markdown_table  # noqa: E402

SYSTEMS = ("continuous", "static", "single")
WORDS = (
    "the model serves requests over http with batching and streaming while the scheduler admits "
    "new sequences into free memory slots def add return value machines that think study of ai"
).split()


# --- workload ------------------------------------------------------------------------------------------


def make_workload(tokenizer, count: int, seed: int) -> List[dict]:
    """``count`` requests with log-normal prompt and output lengths (same seed, same requests)."""
    rng = random.Random(seed)
    requests = []
    for _ in range(count):
        prompt_len = min(400, max(4, round(rng.lognormvariate(math.log(40), 0.6))))
        output_len = min(160, max(4, round(rng.lognormvariate(math.log(30), 0.7))))
        words: List[str] = []
        while len(tokenizer.encode(" ".join(words))) < prompt_len:
            words.append(rng.choice(WORDS))
        requests.append({"inputs": " ".join(words), "max_new_tokens": output_len})
    return requests


def arrival_times(count: int, rate: Optional[float], seed: int) -> List[float]:
    """Seconds after the start at which each request is sent: all at 0 (burst) or Poisson at ``rate``/s."""
    if rate is None:
        return [0.0] * count
    rng = random.Random(seed + 1)
    times, now = [], 0.0
    for _ in range(count):
        times.append(now)
        now += rng.expovariate(rate)
    return times


# --- load ----------------------------------------------------------------------------------------------


async def _one(client, system: str, base: str, request: dict, delay: float, started: float) -> dict:
    import httpx  # noqa: F401  (the client is an httpx.AsyncClient)

    await asyncio.sleep(max(0.0, started + delay - time.perf_counter()))
    sent = time.perf_counter()
    token_times: List[float] = []
    if system == "continuous":
        body = {
            "inputs": request["inputs"],
            "parameters": {"max_new_tokens": request["max_new_tokens"], "ignore_eos": True},
        }
        async with client.stream("POST", f"{base}/generate_stream", json=body) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {await response.aread()!r}")
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    token_times.append(time.perf_counter())
        tokens = len(token_times)
    else:
        response = await client.post(f"{base}/predict", json=request)
        token_times.append(time.perf_counter())
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.text}")
        tokens = response.json()["count_output_tokens"]
    if tokens != request["max_new_tokens"]:
        raise RuntimeError(f"{system}: {tokens} tokens instead of {request['max_new_tokens']}")
    return {"sent": sent, "token_times": token_times, "tokens": tokens, "streamed": system == "continuous"}


async def _kv_watch(client, base: str, stop: asyncio.Event, peaks: Dict[str, float]) -> None:
    while not stop.is_set():
        text = (await client.get(f"{base}/metrics")).text
        for line in text.splitlines():
            for name in ("litserve_llm_kv_tokens_used", "litserve_llm_kv_tokens_capacity"):
                if line.startswith(name + " "):
                    peaks[name] = max(peaks.get(name, 0.0), float(line.split()[1]))
        await asyncio.sleep(0.05)


async def run_load(system: str, port: int, requests: List[dict], arrivals: List[float]) -> dict:
    import httpx

    base = f"http://{HOST}:{port}"
    limits = httpx.Limits(max_connections=len(requests) + 4, max_keepalive_connections=len(requests) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800.0), limits=limits) as client:
        stop, peaks = asyncio.Event(), {}
        watcher = asyncio.create_task(_kv_watch(client, base, stop, peaks)) if system == "continuous" else None
        started = time.perf_counter()
        records = await asyncio.gather(
            *(_one(client, system, base, request, delay, started) for request, delay in zip(requests, arrivals))
        )
        duration = max(record["token_times"][-1] for record in records) - started
        stop.set()
        if watcher is not None:
            await watcher
    return summarize(records, duration, peaks)


def _pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(records: List[dict], duration: float, peaks: Dict[str, float]) -> dict:
    ttft = [r["token_times"][0] - r["sent"] for r in records]
    latency = [r["token_times"][-1] - r["sent"] for r in records]
    streamed = all(r["streamed"] for r in records)
    tpot = [(lat - first) / (r["tokens"] - 1) for r, lat, first in zip(records, latency, ttft) if r["tokens"] > 1]
    itl = [b - a for r in records for a, b in zip(r["token_times"], r["token_times"][1:])]
    tokens = sum(r["tokens"] for r in records)
    return {
        "req_s": len(records) / duration,
        "tok_s": tokens / duration,
        "ttft_p50": _pct(ttft, 50),
        "ttft_p99": _pct(ttft, 99),
        "tpot_p50": _pct(tpot, 50) if streamed else float("nan"),
        "tpot_p99": _pct(tpot, 99) if streamed else float("nan"),
        "itl_p50": _pct(itl, 50) if streamed else float("nan"),
        "itl_p99": _pct(itl, 99) if streamed else float("nan"),
        "latency_p50": _pct(latency, 50),
        "latency_p99": _pct(latency, 99),
        "kv_peak": peaks.get("litserve_llm_kv_tokens_used", float("nan")),
        "kv_capacity": peaks.get("litserve_llm_kv_tokens_capacity", float("nan")),
    }


# --- servers -------------------------------------------------------------------------------------------


def server_argv(system: str, model_dir: str, port: int, args: argparse.Namespace) -> List[str]:
    if system == "continuous":
        argv = [sys.executable, "-m", "litserve.cli", "llm", model_dir, "--port", str(port), "--host", HOST]
        argv += ["--accelerator", args.accelerator, "--timeout", "false"]
        if args.max_total_token_num:
            argv += ["--max-total-token-num", str(args.max_total_token_num)]
        return argv
    batch = "8" if system == "static" else "1"
    argv = [sys.executable, str(BENCH_DIR / "servers" / "llm_static.py"), "--port", str(port)]
    return argv + ["--model-dir", model_dir, "--max-batch-size", batch, "--accelerator", args.accelerator]


def measure_system(system: str, model_dir: str, workloads: dict, args: argparse.Namespace, log_dir: Path) -> dict:
    port = free_port()
    log = log_dir / f"{system}-{time.monotonic_ns()}.log"
    results = {}
    with ServerProcess(system, server_argv(system, model_dir, port, args), port, log) as server:
        server.wait_healthy(600)
        warmup = [dict(next(iter(workloads.values()))[0][0], max_new_tokens=4)] * 2
        asyncio.run(run_load(system, port, warmup, [0.0, 0.0]))
        for name, (requests, arrivals) in workloads.items():
            results[name] = asyncio.run(run_load(system, port, requests, arrivals))
    return results


# --- report --------------------------------------------------------------------------------------------

COLUMNS = [
    ("req/s", "req_s", 1, 2),
    ("output tok/s", "tok_s", 1, 1),
    ("TTFT p50 ms", "ttft_p50", 1000, 0),
    ("TTFT p99 ms", "ttft_p99", 1000, 0),
    ("TPOT p50 ms", "tpot_p50", 1000, 1),
    ("TPOT p99 ms", "tpot_p99", 1000, 1),
    ("ITL p50 ms", "itl_p50", 1000, 1),
    ("ITL p99 ms", "itl_p99", 1000, 1),
    ("latency p50 ms", "latency_p50", 1000, 0),
    ("KV peak / capacity", None, 1, 0),
]


def _median(rounds: List[dict], key: str) -> float:
    values = [r[key] for r in rounds if not math.isnan(r[key])]
    return statistics.median(values) if values else float("nan")


def report(medians: dict, args: argparse.Namespace, model: str) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    machine = platform.processor() or platform.machine()
    lines = [
        f"# LLM serving: continuous vs static batching ({now:%Y-%m-%d %H:%M} UTC)",
        "",
        f"- model: {model}; {args.requests} requests per workload; Poisson rate {args.poisson_rate}/s; "
        f"{args.rounds} round(s), medians shown; accelerator {args.accelerator}; "
        f"{args.threads or 'default'} intra-op thread(s)",
        f"- machine: {machine}, {os.cpu_count()} CPUs; python {platform.python_version()}",
        f"- command: `python benchmarks/llm.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    headers = ["workload", "system", *(name for name, *_ in COLUMNS)]
    rows = []
    for workload, systems in medians.items():
        for system, m in systems.items():
            row = [workload, system]
            for _, key, scale, digits in COLUMNS:
                if key is None:
                    kv = m["kv_peak"]
                    row.append("-" if math.isnan(kv) else f"{kv:.0f} / {m['kv_capacity']:.0f}")
                else:
                    value = m[key] * scale
                    row.append("-" if math.isnan(value) else fmt(value, digits))
            rows.append(row)
    lines.append(markdown_table(headers, rows))
    for workload, systems in medians.items():
        if "continuous" in systems and "static" in systems:
            c, s = systems["continuous"], systems["static"]
            lines.append(
                f"- {workload}: continuous / static req/s = {c['req_s'] / s['req_s']:.2f}x (target >= 2); "
                f"continuous TTFT p50 / static latency p50 = {c['ttft_p50'] / s['latency_p50']:.2f} (target <= 0.33)"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="serve this model (default: build a seeded one with the flags below)")
    parser.add_argument("--arch", default="llama")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--poisson-rate", type=float, default=4.0, help="requests/s of the Poisson workload")
    parser.add_argument("--workloads", default="burst,poisson")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-total-token-num", type=int, default=None)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads of every server (OMP_NUM_THREADS); 0: each its default"
    )
    parser.add_argument("--log-dir", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by every server
    else:
        os.environ.pop("OMP_NUM_THREADS", None)  # no tuning: each server picks its own

    from transformers import AutoTokenizer

    from litserve.llm.testing import build_tiny_model

    model_dir = args.model_dir
    if model_dir is None:
        model_dir = build_tiny_model(
            tempfile.mkdtemp(prefix="llm-bench-") + f"/{args.arch}-{args.num_layers}x{args.hidden_size}",
            arch=args.arch,
            hidden_size=args.hidden_size,
            num_layers=args.num_layers,
            num_heads=args.num_heads,
        )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    requests = make_workload(tokenizer, args.requests, args.seed)
    workloads = {}
    for name in args.workloads.split(","):
        rate = None if name == "burst" else args.poisson_rate
        workloads[name] = (requests, arrival_times(len(requests), rate, args.seed))
    systems = args.systems.split(",")
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="llm-bench-logs-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    per_round: Dict[str, Dict[str, List[dict]]] = {w: {s: [] for s in systems} for w in workloads}
    try:
        for round_index in range(args.rounds):
            order = systems[round_index % len(systems) :] + systems[: round_index % len(systems)]
            for system in order:
                print(f"round {round_index + 1}: {system}", file=sys.stderr, flush=True)
                for workload, result in measure_system(system, model_dir, workloads, args, log_dir).items():
                    per_round[workload][system].append(result)
                    print(f"  {workload}: {json.dumps({k: round(v, 4) for k, v in result.items()})}", file=sys.stderr)
    finally:
        stop_all()
    medians = {
        w: {s: {key: _median(rounds, key) for key in rounds[0]} for s, rounds in by_system.items() if rounds}
        for w, by_system in per_round.items()
    }
    text = report(medians, args, os.path.basename(model_dir))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
