"""What callbacks cost and what enable_async gains, measured against real servers.

1. Hello-world throughput (wrk) with no callbacks and with one no-op callback; with ``--base DIR`` (an export
   of an earlier commit, e.g. ``git archive BASE | tar -x -C DIR``) the same server on that code too.
2. ``enable_async``: N concurrent requests to an ``async def predict`` that awaits 0.2 s, one worker
   (issue 11's example: sequential hooks need N x 0.2 s).

Example:  python benchmarks/callbacks_async.py --rounds 3 --base /tmp/litserve-base
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.procs import HOST, ServerProcess, free_port, group_members, stop_all
from harness.wrk import run_wrk

SERVERS = Path(__file__).resolve().parent / "servers"
REPO = Path(__file__).resolve().parent.parent


def serve(name: str, script: str, log_dir: Path, pythonpath: Path, *extra: str) -> ServerProcess:
    port = free_port()
    env_python = [sys.executable, str(SERVERS / script), "--port", str(port), *extra]
    os.environ["PYTHONPATH"] = str(pythonpath)
    server = ServerProcess(name, env_python, port, log_dir / f"{name}-{port}.log")
    server.start()
    server.wait_healthy(120)
    return server


def group_cpu_seconds(server: ServerProcess) -> float:
    """User + system CPU time used so far by every process of the server (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in group_members(server.proc.pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def hello_throughput(args: argparse.Namespace, log_dir: Path) -> None:
    variants = [
        ("no callbacks", "litserve_hello.py", REPO),
        ("one no-op callback", "litserve_hello_callbacks.py", REPO),
    ]
    if args.base:
        variants.insert(0, ("base commit, no callbacks", "litserve_hello.py", Path(args.base)))
    results = {name: [] for name, _, _ in variants}
    cpu_us = {name: [] for name, _, _ in variants}
    body = json.dumps({"input": 4.0})
    for _ in range(args.rounds):
        for name, script, code in variants:  # interleaved, so drifting machine load hits every variant alike
            server = serve(name.replace(" ", "_").replace(",", ""), script, log_dir, code)
            try:
                url = f"http://{HOST}:{server.port}/predict"
                run_wrk(url, body, threads=1, connections=args.connections, duration=args.warmup)
                cpu_before = group_cpu_seconds(server)
                result = run_wrk(url, body, threads=1, connections=args.connections, duration=args.duration)
                cpu_used = group_cpu_seconds(server) - cpu_before
                assert result.non_2xx == 0 and result.socket_errors == 0, result.output
                results[name].append(result.requests_per_s)
                cpu_us[name].append(cpu_used / result.requests * 1e6)
            finally:
                server.stop()
    print(f"\nhello world, wrk -t1 -c{args.connections} -d{args.duration:g}s, {args.rounds} rounds (req/s)")
    print("| server | req/s median | req/s rounds | server CPU us/request median | rounds |")
    print("| --- | ---: | --- | ---: | --- |")
    for name, values in results.items():
        rounds = ", ".join(f"{v:,.0f}" for v in values)
        cpu = ", ".join(f"{v:.0f}" for v in cpu_us[name])
        median_cpu = statistics.median(cpu_us[name])
        print(f"| {name} | {statistics.median(values):,.0f} | {rounds} | {median_cpu:.0f} | {cpu} |")


def async_concurrency(args: argparse.Namespace, log_dir: Path) -> None:
    server = serve("async_sleep", "litserve_async_sleep.py", log_dir, REPO, "--delay", "0.2")
    try:
        url = f"http://{HOST}:{server.port}/predict"

        def post(i: int) -> dict:
            request = urllib.request.Request(
                url, json.dumps({"input": i}).encode(), {"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())

        post(0)
        walls = []
        for _ in range(args.rounds):
            with ThreadPoolExecutor(args.concurrent) as pool:
                started = time.perf_counter()
                answers = list(pool.map(post, range(args.concurrent)))
                walls.append(time.perf_counter() - started)
            assert [a["output"] for a in answers] == [float(i * i) for i in range(args.concurrent)]
    finally:
        server.stop()
    print(f"\nenable_async: {args.concurrent} concurrent requests, async predict awaits 0.2 s, one worker")
    print(f"wall time per round (s): {', '.join(f'{w:.3f}' for w in walls)}; median {statistics.median(walls):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--base", default=None, help="directory holding an earlier commit's litserve package")
    parser.add_argument("--only", default="hello,async", help="hello, async or both")
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="litserve-bench-"))
    try:
        if "hello" in args.only:
            hello_throughput(args, log_dir)
        if "async" in args.only:
            async_concurrency(args, log_dir)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
