"""Two figures of issue 13, against real servers on 127.0.0.1:

1. ``/health`` latency while 500 slow clients trickle request heads (a byte every half second; when the
   server closes one with 408 after its header timeout, it reconnects), against the same probes unloaded.
   Each probe is a fresh connection, as a load balancer's or kubelet's would be.
2. Overload with fairness: a server whose predict takes ``--service-ms`` on one worker (so its capacity is
   known) gets 3x that rate, open loop, for ``--seconds``. Reported: how fast refusals (503) come, and the p99
   latency of admitted requests against the unloaded p99 (target: at most 2x).

    PYTHONPATH=$PWD nice -n 10 python benchmarks/hostile_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import HOST, Server, read_response, request_bytes  # noqa: E402


def percentile(values: List[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def _probe(port: int, path: str = "/health") -> Tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status, _ = await read_response(reader)
    finally:
        writer.close()
    return status, time.perf_counter() - started


async def probe_health(port: int, count: int, interval: float) -> List[float]:
    latencies = []
    for _ in range(count):
        status, latency = await _probe(port)
        if status not in (200, 503):
            raise SystemExit(f"/health answered {status}")
        latencies.append(latency)
        await asyncio.sleep(interval)
    return latencies


# --- slow clients (in a process of their own, so the probes' timing is not theirs) ------------------------


async def _trickle(port: int, until: float, open_now: List[int], closed_by_server: List[int]) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        open_now[0] += 1
        try:
            for i in range(len(head)):
                if time.monotonic() > until or reader.at_eof():
                    break
                writer.write(head[i : i + 1])
                try:
                    data = await asyncio.wait_for(reader.read(65536), timeout=0.5)
                except asyncio.TimeoutError:
                    continue
                if data.startswith(b"HTTP/1.1 408") or not data:
                    closed_by_server[0] += 1
                    break
        except OSError:
            closed_by_server[0] += 1
        finally:
            open_now[0] -= 1
            writer.close()


def run_slow_clients(port: int, count: int, seconds: float, report) -> None:
    async def main() -> None:
        until = time.monotonic() + seconds
        open_now, closed = [0], [0]
        tasks = [asyncio.ensure_future(_trickle(port, until, open_now, closed)) for _ in range(count)]
        peak = 0
        while time.monotonic() < until:
            peak = max(peak, open_now[0])
            await asyncio.sleep(0.1)
        await asyncio.gather(*tasks, return_exceptions=True)
        report.put((peak, closed[0]))

    asyncio.run(main())


def health_figures(log_dir: Path, slow_clients: int, probes: int) -> None:
    server = Server("hello", "litserve_hello.py", log_dir)
    try:
        server.wait_healthy()
        unloaded = asyncio.run(probe_health(server.port, probes, 0.02))
        report: multiprocessing.Queue = multiprocessing.Queue()
        attack_s = 8.0 + probes * 0.03
        attackers = multiprocessing.Process(target=run_slow_clients, args=(server.port, slow_clients, attack_s, report))
        attackers.start()
        time.sleep(6.0)  # every slow client connected, some already closed and reconnected
        loaded = asyncio.run(probe_health(server.port, probes, 0.02))
        peak, closed = report.get(timeout=attack_s + 60)
        attackers.join(30)
        print(f"\n## /health with {slow_clients} slow clients ({probes} probes, fresh connection each)\n")
        print("| condition | p50 (ms) | p99 (ms) | max (ms) |")
        print("| --- | --- | --- | --- |")
        for name, values in (("unloaded", unloaded), (f"{slow_clients} trickling heads", loaded)):
            print(f"| {name} | {ms(percentile(values, 0.5))} | {ms(percentile(values, 0.99))} | {ms(max(values))} |")
        print(f"\nslow connections open at once (peak): {peak}; closed by the server (408): {closed}")
    finally:
        server.stop()


# --- overload ----------------------------------------------------------------------------------------


async def _predict(port: int, x: int) -> Tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request_bytes("POST", "/predict", b'{"input": %d}' % x))
        status, _ = await read_response(reader)
    finally:
        writer.close()
    return status, time.perf_counter() - started


async def unloaded_latencies(port: int, count: int) -> List[float]:
    latencies = []
    for i in range(count):
        status, latency = await _predict(port, i)
        if status != 200:
            raise SystemExit(f"unloaded request answered {status}")
        latencies.append(latency)
    return latencies


async def open_loop(port: int, rate: float, seconds: float) -> List[Tuple[int, float]]:
    tasks = []
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(_predict(port, i)))
    return await asyncio.gather(*tasks)


def overload_figures(log_dir: Path, service_ms: float, max_queue_size: int, seconds: float) -> None:
    args = ["--service-ms", str(service_ms), "--max-queue-size", str(max_queue_size)]
    server = Server("sleep", "litserve_sleep.py", log_dir, args)
    try:
        server.wait_healthy()
        asyncio.run(unloaded_latencies(server.port, 20))  # warm-up
        unloaded = asyncio.run(unloaded_latencies(server.port, 300))
        capacity = 1000.0 / service_ms
        results = asyncio.run(open_loop(server.port, 3 * capacity, seconds))
        admitted = [latency for status, latency in results if status == 200]
        refused = [latency for status, latency in results if status == 503]
        other = sorted({status for status, _ in results} - {200, 503})
        base_p99 = percentile(unloaded, 0.99)
        print(
            f"\n## 3x overload: {3 * capacity:.0f} req/s for {seconds:g} s against a capacity of {capacity:.0f} req/s "
            f"(predict {service_ms:g} ms, one worker, max_queue_size={max_queue_size})\n"
        )
        print("| requests | count | p50 (ms) | p99 (ms) | max (ms) |")
        print("| --- | --- | --- | --- | --- |")
        for name, values in (("unloaded", unloaded), ("admitted at 3x", admitted), ("refused (503) at 3x", refused)):
            if values:
                row = f"{ms(percentile(values, 0.5))} | {ms(percentile(values, 0.99))} | {ms(max(values))} |"
                print(f"| {name} | {len(values)} | {row}")
        if admitted:
            print(f"\nadmitted p99 / unloaded p99 = {percentile(admitted, 0.99) / base_p99:.2f} (target <= 2)")
        if refused:
            print(f"refused within 50 ms: {sum(1 for v in refused if v <= 0.05) / len(refused):.1%}")
        if other:
            print(f"other statuses: {other}")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow-clients", type=int, default=500)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--max-queue-size", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--only", choices=["health", "overload"], default=None)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="litserve-hostile-"))
    if args.only in (None, "health"):
        health_figures(log_dir, args.slow_clients, args.probes)
    if args.only in (None, "overload"):
        overload_figures(log_dir, args.service_ms, args.max_queue_size, args.seconds)


if __name__ == "__main__":
    main()
