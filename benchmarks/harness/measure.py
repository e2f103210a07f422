"""Client-side measurements: concurrency-1 latency and one streaming request, both bounded in count and time."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from dataclasses import dataclass

from harness.httpclient import Connection, build_post, run_async

HOST = "127.0.0.1"


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


@dataclass
class LatencyResult:
    """Concurrency-1 latency over one keep-alive connection."""

    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


@dataclass
class StreamResult:
    """One client streaming ``items`` lines."""

    items: int
    items_per_s: float
    first_item_ms: float
    total_s: float
    last_line_ok: bool


def check_post(port: int, path: str, body: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send one POST on a fresh connection and return (status, body): a sanity check before loading."""

    async def once() -> tuple[int, bytes]:
        conn = Connection(HOST, port)
        await conn.open()
        try:
            return await conn.post(build_post(HOST, port, path, body))
        finally:
            await conn.close()

    return run_async(asyncio.wait_for(once(), timeout))


async def _latency_loop(
    port: int, path: str, body: bytes, warmup: int, max_requests: int, seconds: float
) -> LatencyResult:
    request = build_post(HOST, port, path, body)
    conn = Connection(HOST, port)
    await conn.open()
    try:
        for _ in range(warmup):
            await conn.post(request)
        samples: list[float] = []
        errors = 0
        clock = time.perf_counter
        deadline = clock() + seconds
        while len(samples) < max_requests and clock() < deadline:
            start = clock()
            status, _ = await conn.post(request)
            samples.append(clock() - start)
            errors += status != 200
    finally:
        await conn.close()
    return LatencyResult(1e3 * percentile(samples, 0.5), 1e3 * percentile(samples, 0.99), len(samples), errors)


def measure_latency(
    port: int, path: str, body: bytes, *, warmup: int, max_requests: int, seconds: float
) -> LatencyResult:
    """One client, one request at a time: at most ``max_requests`` timed requests or ``seconds`` of them."""
    loop = _latency_loop(port, path, body, warmup, max_requests, seconds)
    return run_async(asyncio.wait_for(loop, seconds + 60))


async def _stream_once(port: int, path: str, items: int) -> StreamResult:
    request = build_post(HOST, port, path, json.dumps({"n": items}).encode())
    conn = Connection(HOST, port)
    await conn.open()
    clock = time.perf_counter
    try:
        start = clock()
        conn.send(request)
        status, headers = await conn.read_head()
        if status != 200:
            raise RuntimeError(f"stream request answered {status}")
        count, first, tail = 0, 0.0, b""
        async for payload in conn.iter_body(headers):
            lines = payload.count(b"\n")
            if lines and not count:
                first = clock() - start
            count += lines
            tail = (tail + payload)[-256:]
        total = clock() - start
    finally:
        await conn.close()
    last = tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
    last_ok = bool(last) and json.loads(last) == {"i": items - 1}
    return StreamResult(count, count / total, 1e3 * first, total, last_ok)


def measure_stream(port: int, path: str, items: int, timeout: float = 120.0) -> StreamResult:
    """Stream ``items`` lines on one fresh connection; time to the first complete line and items/s overall."""
    return run_async(asyncio.wait_for(_stream_once(port, path, items), timeout))


def median_stream(results: list[StreamResult]) -> tuple[float, float]:
    """Return (median items/s, median time to first item in ms)."""
    return statistics.median(r.items_per_s for r in results), statistics.median(r.first_item_ms for r in results)
