"""Run the litserve benchmarks in one go and print (and optionally write) a markdown report.

Example:  python benchmarks/run.py --rounds 3 --out benchmarks/results.md
Against upstream LitServe:  python benchmarks/run.py --python /work/venv-ref/bin/python

Every server is started here, on a free 127.0.0.1 port, in its own process group that is killed when its
round ends; all load goes to 127.0.0.1 only and every load loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.procs import stop_all
from harness.report import Section, document, section_markdown, summary_table
from harness.targets import SERVERS_DIR, TARGETS, Config, progress
from harness.wrk import wrk_version

VERSIONS_SNIPPET = """
import json, platform, importlib.metadata as md
import litserve
def version(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "not installed"
info = {"python": platform.python_version(), "litserve": getattr(litserve, "__version__", "?")}
info["litserve_path"] = litserve.__file__
info.update({n: version(n) for n in ("torch", "fastapi", "uvicorn", "uvloop", "httptools")})
print(json.dumps(info))
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line flags."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter that runs the servers (default: this one)"
    )
    parser.add_argument("--only", default="1,2,3,4,5,6", help="comma-separated targets to run, e.g. 1,3")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target; medians are reported")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed wrk load before each run")
    parser.add_argument("--check-duration", type=float, default=1.0, help="seconds of the validating wrk run")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--stream-items", type=int, default=10_000, help="items per streaming request")
    parser.add_argument("--streams-per-round", type=int, default=5, help="timed streaming requests per round")
    parser.add_argument("--latency-requests", type=int, default=2000, help="max timed requests per latency round")
    parser.add_argument("--batch-timeout", type=float, default=0.005, help="batch_timeout of the MLP server")
    parser.add_argument("--health-timeout", type=float, default=120.0, help="seconds to wait for /health 200")
    parser.add_argument("--log-dir", type=Path, default=None, help="server logs (default: a new temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown report here")
    args = parser.parse_args(argv)
    args.only = sorted({int(x) for x in args.only.split(",") if x.strip()})
    unknown = set(args.only) - set(TARGETS)
    if unknown or args.rounds < 1 or args.duration <= 0:
        parser.error(f"bad --only {sorted(unknown)} or --rounds/--duration")
    return args


def make_config(args: argparse.Namespace) -> Config:
    """Turn flags into the targets' Config."""
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="litserve-bench-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    return Config(
        python=args.python,
        duration=args.duration,
        warmup=args.warmup,
        check_duration=args.check_duration,
        rounds=args.rounds,
        threads=args.threads,
        connections=args.connections,
        stream_items=args.stream_items,
        streams_per_round=args.streams_per_round,
        latency_requests=args.latency_requests,
        batch_timeout=args.batch_timeout,
        health_timeout=args.health_timeout,
        log_dir=log_dir,
    )


def server_versions(python: str) -> dict[str, str]:
    """Ask the servers' interpreter which litserve (and friends) it imports, from the servers' directory."""
    proc = subprocess.run(
        [python, "-c", VERSIONS_SNIPPET], cwd=SERVERS_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{python} cannot import litserve:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def environment(cfg: Config, versions: dict[str, str]) -> list[str]:
    """Lines describing what was measured and on what."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    return [
        f"date: {now}; machine: {cpu_model()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"servers' interpreter: `{cfg.python}` (Python {versions['python']})",
        f"litserve {versions['litserve']} from `{versions['litserve_path']}`",
        "torch {torch}, fastapi {fastapi}, uvicorn {uvicorn}, uvloop {uvloop}, httptools {httptools}".format(
            **versions
        ),
        f"load: {wrk_version()}; latency/streaming client: raw asyncio HTTP/1.1 (Python {platform.python_version()})",
        f"rounds: {cfg.rounds} (medians reported), wrk duration {cfg.duration:g} s after {cfg.warmup:g} s warm-up",
        f"server logs: `{cfg.log_dir}`",
    ]


def raise_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that servers are still cleaned up."""

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def run_targets(cfg: Config, only: list[int]) -> list[Section]:
    """Run the selected targets in order, printing each section as it finishes."""
    sections: list[Section] = []
    for number in only:
        section = TARGETS[number](cfg)
        sections.append(section)
        print(section_markdown(section) + "\n", file=sys.stderr, flush=True)
    return sections


def main(argv: list[str]) -> int:
    """Entry point."""
    args = parse_args(argv)
    cfg = make_config(args)
    raise_on_sigterm()
    versions = server_versions(cfg.python)
    env = environment(cfg, versions)
    progress(f"litserve {versions['litserve']} from {versions['litserve_path']}; logs in {cfg.log_dir}")
    try:
        sections = run_targets(cfg, args.only)
    except KeyboardInterrupt:
        progress("interrupted; servers stopped")
        return 130
    finally:
        stop_all()
    report = document("litserve benchmarks", env, sections)
    print(summary_table(sections))
    if args.out:
        args.out.write_text(report)
        progress(f"wrote {args.out}")
    else:
        print("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
