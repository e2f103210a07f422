"""The five benchmark targets. Each starts its own servers, alternates rounds, and returns a report Section.

Only one server runs at a time, so an idle server never takes CPU from the one being measured, and the
order of the compared servers flips every round so that drift on the machine hits both alike.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from harness import measure
from harness.procs import HOST, ServerProcess, free_port
from harness.report import Section, Summary, fmt
from harness.wrk import CheckResult, WrkResult, run_wrk, run_wrk_check

BENCH_DIR = Path(__file__).resolve().parent.parent
SERVERS_DIR = BENCH_DIR / "servers"
MODEL_ALONE = BENCH_DIR / "model_alone.py"
HELLO_BODY = '{"input": 4.0}'
HELLO_EXPECT = "16.0"
MLP_EXPECT = '"output"'
MLP_BODY = json.dumps({"input": [round(math.sin(i), 6) for i in range(64)]})
T = TypeVar("T")
_log_counter = itertools.count()


@dataclass
class Config:
    """Settings shared by all targets (see ``run.py --help``)."""

    python: str
    duration: float
    warmup: float
    check_duration: float
    rounds: int
    threads: int
    connections: int
    stream_items: int
    streams_per_round: int
    latency_requests: int
    batch_timeout: float
    health_timeout: float
    log_dir: Path


@dataclass
class ServerSpec:
    """A server script and its extra flags."""

    label: str
    script: str
    args: tuple[str, ...] = ()


@dataclass
class LoadRound:
    """One measured wrk run and the validation run that followed it on the same server."""

    wrk: WrkResult
    check: CheckResult


LITSERVE_HELLO = ServerSpec("litserve", "litserve_hello.py")
FASTAPI_HELLO = ServerSpec("FastAPI", "fastapi_hello.py")
LITSERVE_STREAM = ServerSpec("litserve", "litserve_stream.py")


def mlp_spec(cfg: Config, max_batch_size: int, batch_timeout: float) -> ServerSpec:
    """The MLP server with the given batching flags."""
    args = ("--max-batch-size", str(max_batch_size), "--batch-timeout", f"{batch_timeout:g}")
    return ServerSpec(f"litserve MLP (max_batch_size={max_batch_size})", "litserve_mlp.py", args)


def progress(message: str) -> None:
    """Print a progress line to stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def alternate(items: list[T], round_index: int) -> list[T]:
    """Rotate ``items`` by the round number: A,B then B,A (or A,B,C then B,C,A then C,A,B)."""
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def new_server(cfg: Config, spec: ServerSpec) -> ServerProcess:
    """Build (not start) a ServerProcess for ``spec`` on a free loopback port."""
    port = free_port()
    argv = [cfg.python, str(SERVERS_DIR / spec.script), "--port", str(port), *spec.args]
    log_path = cfg.log_dir / f"{next(_log_counter):03d}-{Path(spec.script).stem}.log"
    return ServerProcess(spec.label, argv, port, log_path)


@contextlib.contextmanager
def serving(cfg: Config, spec: ServerSpec) -> Iterator[ServerProcess]:
    """Start a server, wait for GET /health 200, yield it, and always kill its process group."""
    server = new_server(cfg, spec)
    with server:
        server.wait_healthy(cfg.health_timeout)
        yield server


def check_response(server: ServerProcess, body: str, validate: Callable[[dict], bool]) -> None:
    """Send one request and fail loudly if the answer is not a valid 200."""
    status, payload = measure.check_post(server.port, "/predict", body.encode())
    if status != 200 or not validate(json.loads(payload)):
        raise RuntimeError(f"{server.name}: bad answer {status} {payload[:200]!r}\n{server.log_tail()}")


def is_hello(answer: dict) -> bool:
    """The hello servers square 4.0."""
    return answer.get("output") == 16.0


def is_mlp(answer: dict) -> bool:
    """The MLP answers 10 floats."""
    return isinstance(answer.get("output"), list) and len(answer["output"]) == 10


def wrk_round(cfg: Config, spec: ServerSpec, body: str, validate: Callable[[dict], bool], expect: str) -> LoadRound:
    """Start the server, check one answer, warm up, run the measured wrk, then a short validating wrk run."""
    load = {"threads": cfg.threads, "connections": cfg.connections}
    with serving(cfg, spec) as server:
        check_response(server, body, validate)
        url = f"http://{HOST}:{server.port}/predict"
        if cfg.warmup > 0:
            run_wrk(url, body, duration=cfg.warmup, **load)
        result = run_wrk(url, body, duration=cfg.duration, **load)
        check = run_wrk_check(url, body, expect, duration=cfg.check_duration, **load)
    progress(
        f"  {spec.label}: {result.requests_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms"
    )
    return LoadRound(result, check)


def wrk_row(label: str, rounds: list[LoadRound]) -> list[str]:
    """Median req/s, p50, p99 over rounds, plus summed error counts."""
    results = [r.wrk for r in rounds]
    return [
        label,
        fmt(statistics.median(r.requests_per_s for r in results), 0),
        fmt(statistics.median(r.p50_ms for r in results)),
        fmt(statistics.median(r.p99_ms for r in results)),
        str(sum(r.non_2xx for r in results)),
        str(sum(r.socket_errors for r in results)),
        f"{sum(r.check.bad for r in rounds)} / {sum(r.check.checked for r in rounds):,}",
    ]


WRK_HEADERS = ["server", "req/s", "p50 ms", "p99 ms", "non-2xx", "socket errors", "bad answers / checked"]
WRK_NOTES = [
    "non-2xx: wrk's 'Non-2xx or 3xx responses' in the measured runs (wrk counts statuses >= 400).",
    "bad answers: a separate short wrk run after each measured one (same load, post_json_check.lua) "
    "counts answers that are not 200 or lack the expected value.",
]


def errors(rounds: list[LoadRound]) -> int:
    """Every kind of failed request over the rounds."""
    return sum(r.wrk.non_2xx + r.wrk.socket_errors + r.check.bad for r in rounds)


def median_rps(rounds: list[LoadRound]) -> float:
    """Median wrk req/s over rounds."""
    return statistics.median(r.wrk.requests_per_s for r in rounds)


def wrk_raw(label: str, rounds: list[LoadRound]) -> list[str]:
    """Per-round wrk figures."""
    return [
        f"{label} round {i + 1}: {r.wrk.requests_per_s:,.0f} req/s  p50 {r.wrk.p50_ms:.2f} ms  "
        f"p99 {r.wrk.p99_ms:.2f} ms  non-2xx {r.wrk.non_2xx}  socket errors {r.wrk.socket_errors}  "
        f"bad {r.check.bad}/{r.check.checked}"
        for i, r in enumerate(rounds)
    ]


def target_hello(cfg: Config) -> Section:
    """1. Hello world under wrk: litserve req/s against plain FastAPI req/s."""
    results: dict[str, list[LoadRound]] = {LITSERVE_HELLO.label: [], FASTAPI_HELLO.label: []}
    for round_index in range(cfg.rounds):
        progress(f"1. hello world, round {round_index + 1}/{cfg.rounds}")
        for spec in alternate([LITSERVE_HELLO, FASTAPI_HELLO], round_index):
            results[spec.label].append(wrk_round(cfg, spec, HELLO_BODY, is_hello, HELLO_EXPECT))
    lit, ref = results[LITSERVE_HELLO.label], results[FASTAPI_HELLO.label]
    ratio = median_rps(lit) / median_rps(ref)
    load = f"wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.duration:g}s"
    return Section(
        number=1,
        title=f"Hello world, {load}",
        headers=WRK_HEADERS,
        rows=[wrk_row(label, rs) for label, rs in results.items()] + [padded(["ratio litserve/FastAPI", fmt(ratio)])],
        summary=Summary(
            f"hello world req/s ({load})",
            f"{fmt(median_rps(lit), 0)} req/s",
            f"FastAPI {fmt(median_rps(ref), 0)} req/s",
            fmt(ratio),
            ">= 1.20, no errors",
            ratio >= 1.2 and errors(lit) == 0,
        ),
        raw=wrk_raw("litserve", lit) + wrk_raw("FastAPI", ref),
        notes=WRK_NOTES,
    )


def padded(cells: list[str], width: int = len(WRK_HEADERS)) -> list[str]:
    """Fill a short table row with empty cells."""
    return cells + [""] * (width - len(cells))


def model_alone(cfg: Config, batch_size: int) -> dict:
    """Run ``model_alone.py --json`` with the servers' interpreter; return its JSON result."""
    argv = [cfg.python, str(MODEL_ALONE), "--batch-size", str(batch_size), "--rounds", "3", "--seconds", "1", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"model_alone.py failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def target_mlp(cfg: Config) -> Section:
    """2. MLP batching: served req/s under wrk against the model's own samples/s at batch 16."""
    spec = mlp_spec(cfg, 16, cfg.batch_timeout)
    served: list[LoadRound] = []
    alone: list[float] = []
    for round_index in range(cfg.rounds):
        progress(f"2. MLP batching, round {round_index + 1}/{cfg.rounds}")
        for step in alternate(["alone", "served"], round_index):
            if step == "alone":
                alone.append(model_alone(cfg, 16)["samples_per_s"])
                progress(f"  model alone: {alone[-1]:,.0f} samples/s")
            else:
                served.append(wrk_round(cfg, spec, MLP_BODY, is_mlp, MLP_EXPECT))
    alone_sps = statistics.median(alone)
    ratio = median_rps(served) / alone_sps
    load = f"wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.duration:g}s"
    rows = [
        wrk_row(spec.label, served),
        padded(["model alone, batch 16, 1 thread (samples/s)", fmt(alone_sps, 0)]),
        padded(["ratio served/alone", fmt(ratio)]),
    ]
    return Section(
        number=2,
        title=f"MLP batching (max_batch_size=16, batch_timeout={cfg.batch_timeout:g}), {load}",
        headers=WRK_HEADERS,
        rows=rows,
        summary=Summary(
            f"MLP served req/s ({load})",
            f"{fmt(median_rps(served), 0)} req/s",
            f"model alone {fmt(alone_sps, 0)} samples/s",
            fmt(ratio),
            ">= 0.85, no errors",
            ratio >= 0.85 and errors(served) == 0,
        ),
        raw=wrk_raw("served", served) + [f"model alone round {i + 1}: {v:,.0f} samples/s" for i, v in enumerate(alone)],
        notes=WRK_NOTES[:1] + ["model alone: model_alone.py --batch-size 16 (median of 3 one-second rounds)."],
    )


def target_stream(cfg: Config) -> Section:
    """3. Streaming: one client streams N items; items/s and time to the first item."""
    results: list[measure.StreamResult] = []
    raw: list[str] = []
    for round_index in range(cfg.rounds):
        progress(f"3. streaming, round {round_index + 1}/{cfg.rounds}")
        with serving(cfg, LITSERVE_STREAM) as server:
            measure.measure_stream(server.port, "/predict", cfg.stream_items)  # warm-up
            batch = [
                measure.measure_stream(server.port, "/predict", cfg.stream_items) for _ in range(cfg.streams_per_round)
            ]
        results += batch
        raw += [f"round {round_index + 1} stream {i + 1}: {stream_line(r)}" for i, r in enumerate(batch)]
        items_per_s, first_ms = measure.median_stream(batch)
        progress(f"  {items_per_s:,.0f} items/s, first item {first_ms:.2f} ms (medians of the round)")
    bad = [r for r in results if r.items != cfg.stream_items or not r.last_line_ok]
    items_per_s, first_ms = measure.median_stream(results)
    worst_first = max(r.first_item_ms for r in results)
    return Section(
        number=3,
        title=f"Streaming, one client, {cfg.stream_items:,} items per request",
        headers=["server", "items/s", "first item ms", "worst first item ms", "streams", "incomplete streams"],
        rows=[["litserve", fmt(items_per_s, 0), fmt(first_ms), fmt(worst_first), str(len(results)), str(len(bad))]],
        summary=Summary(
            f"streaming {cfg.stream_items:,} items",
            f"{fmt(items_per_s, 0)} items/s, first {fmt(first_ms)} ms",
            "-",
            "-",
            ">= 20,000 items/s, first < 2 ms",
            items_per_s >= 20_000 and first_ms < 2.0 and not bad,
        ),
        raw=raw,
        notes=[
            "items/s = items / (last byte - request sent); first item = request sent -> first complete line; "
            "medians over all streams (one untimed stream first on each server start).",
        ],
    )


def stream_line(r: measure.StreamResult) -> str:
    """One stream's figures."""
    return (
        f"{r.items} items  {r.items_per_s:,.0f} items/s  first {r.first_item_ms:.2f} ms  total {r.total_s * 1e3:.1f} ms"
        + ("" if r.last_line_ok else "  LAST LINE WRONG")
    )


def latency_round(cfg: Config, spec: ServerSpec, body: str, validate: Callable[[dict], bool]) -> measure.LatencyResult:
    """Start the server and time requests one at a time on one keep-alive connection."""
    with serving(cfg, spec) as server:
        check_response(server, body, validate)
        result = measure.measure_latency(
            server.port,
            "/predict",
            body.encode(),
            warmup=200,
            max_requests=cfg.latency_requests,
            seconds=max(cfg.duration, 5.0),
        )
    progress(f"  {spec.label}: p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms ({result.requests} requests)")
    return result


def target_latency(cfg: Config) -> Section:
    """4. Concurrency-1 latency: p50 server overhead over the model's own time."""
    mlp = mlp_spec(cfg, 1, 0.0)
    hello = ServerSpec("litserve hello", LITSERVE_HELLO.script)
    fastapi = ServerSpec("FastAPI hello", FASTAPI_HELLO.script)
    fastapi_mlp = ServerSpec("FastAPI MLP inline", "fastapi_mlp.py")
    cases = [
        (mlp, MLP_BODY, is_mlp),
        (fastapi_mlp, MLP_BODY, is_mlp),
        (hello, HELLO_BODY, is_hello),
        (fastapi, HELLO_BODY, is_hello),
    ]
    with_model = (mlp.label, fastapi_mlp.label)
    results: dict[str, list[measure.LatencyResult]] = {spec.label: [] for spec, _, _ in cases}
    model_ms: list[float] = []
    for round_index in range(cfg.rounds):
        progress(f"4. concurrency-1 latency, round {round_index + 1}/{cfg.rounds}")
        model_ms.append(model_alone(cfg, 1)["ms_per_pass_p50"])
        progress(f"  model alone, one vector: {model_ms[-1]:.3f} ms")
        for spec, body, validate in alternate(cases, round_index):
            results[spec.label].append(latency_round(cfg, spec, body, validate))
    model_p50 = statistics.median(model_ms)
    rows = [latency_row(label, rs, model_p50 if label in with_model else 0.0) for label, rs in results.items()]
    mlp_overhead = statistics.median(r.p50_ms for r in results[mlp.label]) - model_p50
    inline_overhead = statistics.median(r.p50_ms for r in results[fastapi_mlp.label]) - model_p50
    hello_p50 = statistics.median(r.p50_ms for r in results[hello.label])
    errors = sum(r.errors for rs in results.values() for r in rs)
    return Section(
        number=4,
        title="Concurrency-1 latency (one client, one keep-alive connection)",
        headers=["server", "p50 ms", "p99 ms", "model p50 ms", "p50 overhead ms", "requests/round", "errors"],
        rows=rows,
        summary=Summary(
            "c=1 p50 overhead over the model (MLP, one vector)",
            f"{fmt(mlp_overhead, 3)} ms",
            f"model {fmt(model_p50, 3)} ms; FastAPI inline +{fmt(inline_overhead, 3)} ms; "
            f"hello p50 {fmt(hello_p50, 3)} ms",
            "-",
            "< 1 ms",
            mlp_overhead < 1.0 and errors == 0,
        ),
        raw=[
            f"{label} round {i + 1}: p50 {r.p50_ms:.3f} ms  p99 {r.p99_ms:.3f} ms  errors {r.errors}"
            for label, rs in results.items()
            for i, r in enumerate(rs)
        ]
        + [f"model alone round {i + 1}: {v:.3f} ms" for i, v in enumerate(model_ms)],
        notes=[
            "model p50 = median forward time of the MLP on one (64,) vector in model_alone.py (hello: x**2, ~0).",
            "Latency is measured in the harness with a raw asyncio HTTP/1.1 client, so it includes the client's "
            "own cost (the FastAPI hello row shows the floor).",
            "FastAPI MLP inline runs the same model in its route, in the API process: its overhead is what serving "
            "costs with no worker process (the model runs slower between requests than in model_alone.py's tight "
            "loop, where its 34 MB of weights stay in cache).",
        ],
    )


def latency_row(label: str, results: list[measure.LatencyResult], model_p50: float) -> list[str]:
    """Median p50/p99 over rounds and the p50 overhead over ``model_p50``."""
    p50 = statistics.median(r.p50_ms for r in results)
    return [
        label,
        fmt(p50, 3),
        fmt(statistics.median(r.p99_ms for r in results), 3),
        fmt(model_p50, 3) if model_p50 else "~0",
        fmt(p50 - model_p50, 3),
        str(results[0].requests),
        str(sum(r.errors for r in results)),
    ]


def startup_once(cfg: Config, spec: ServerSpec) -> float:
    """Seconds from spawning ``python server.py`` to its first GET /health 200."""
    server = new_server(cfg, spec)
    with server:
        return server.wait_healthy(cfg.health_timeout)


def target_startup(cfg: Config) -> Section:
    """5. Start-up time of the hello-world server, plain FastAPI alongside."""
    specs = [LITSERVE_HELLO, FASTAPI_HELLO]
    for spec in specs:
        startup_once(cfg, spec)  # untimed: warms the page cache
    results: dict[str, list[float]] = {spec.label: [] for spec in specs}
    for round_index in range(cfg.rounds):
        progress(f"5. start-up, round {round_index + 1}/{cfg.rounds}")
        for spec in alternate(specs, round_index):
            results[spec.label].append(startup_once(cfg, spec))
            progress(f"  {spec.label}: {results[spec.label][-1]:.3f} s")
    lit = statistics.median(results[LITSERVE_HELLO.label])
    ref = statistics.median(results[FASTAPI_HELLO.label])
    return Section(
        number=5,
        title="Start-up: `python server.py` until GET /health answers 200 (hello world)",
        headers=["server", "median s", "min s", "max s"],
        rows=[[label, fmt(statistics.median(v), 3), fmt(min(v), 3), fmt(max(v), 3)] for label, v in results.items()],
        summary=Summary(
            "start-up to /health 200 (hello world)",
            f"{fmt(lit, 3)} s",
            f"FastAPI {fmt(ref, 3)} s",
            "-",
            "< 3 s",
            lit < 3.0,
        ),
        raw=[f"{label} round {i + 1}: {v:.3f} s" for label, vs in results.items() for i, v in enumerate(vs)],
        notes=["Health is polled every 5 ms on a fresh connection; an untimed start of each server runs first."],
    )


def target_access_log(cfg: Config) -> Section:
    """6. The access log's cost: hello world under wrk with it off and on, on litserve and FastAPI alike."""
    specs = {
        (server, setting): ServerSpec(
            f"{base.label}, access log {setting}", base.script, ("--access-log",) if setting == "on" else ()
        )
        for server, base in (("litserve", LITSERVE_HELLO), ("FastAPI", FASTAPI_HELLO))
        for setting in ("off", "on")
    }
    results: dict[tuple[str, str], list[LoadRound]] = {key: [] for key in specs}
    for round_index in range(cfg.rounds):
        progress(f"6. access log, round {round_index + 1}/{cfg.rounds}")
        for key in alternate(list(specs), round_index):
            results[key].append(wrk_round(cfg, specs[key], HELLO_BODY, is_hello, HELLO_EXPECT))
    rps = {key: median_rps(rounds) for key, rounds in results.items()}
    ratio = {setting: rps[("litserve", setting)] / rps[("FastAPI", setting)] for setting in ("off", "on")}
    cost = {server: 1 - rps[(server, "on")] / rps[(server, "off")] for server in ("litserve", "FastAPI")}
    load = f"wrk -t{cfg.threads} -c{cfg.connections} -d{cfg.duration:g}s"
    rows = [wrk_row(specs[key].label, rounds) for key, rounds in results.items()]
    rows += [padded([f"ratio litserve/FastAPI, access log {setting}", fmt(ratio[setting])]) for setting in ratio]
    rows += [padded([f"{server}: req/s lost to the access log", f"{cost[server]:.1%}"]) for server in cost]
    lit_errors = errors(results[("litserve", "off")]) + errors(results[("litserve", "on")])
    return Section(
        number=6,
        title=f"Access log off and on (hello world), {load}",
        headers=WRK_HEADERS,
        rows=rows,
        summary=Summary(
            f"hello world req/s with the access log on ({load})",
            f"{fmt(rps[('litserve', 'on')], 0)} req/s (off: {fmt(rps[('litserve', 'off')], 0)}; "
            f"cost {cost['litserve']:.1%})",
            f"FastAPI on {fmt(rps[('FastAPI', 'on')], 0)} req/s (cost {cost['FastAPI']:.1%})",
            f"{fmt(ratio['on'])} on / {fmt(ratio['off'])} off",
            ">= 1.20 on, no errors",
            ratio["on"] >= 1.2 and lit_errors == 0,
        ),
        raw=[line for key, rounds in results.items() for line in wrk_raw(specs[key].label, rounds)],
        notes=WRK_NOTES
        + [
            "access log on: uvicorn's access log at info level on both servers (litserve: run(access_log=True), its "
            "default, with log_level='info'; FastAPI: uvicorn.run(access_log=True, log_level='info')), written to "
            "the server's log file; off: access_log=False and log_level='warning' on both.",
        ],
    )


TARGETS: dict[int, Callable[[Config], Section]] = {
    1: target_hello,
    2: target_mlp,
    3: target_stream,
    4: target_latency,
    5: target_startup,
    6: target_access_log,
}
