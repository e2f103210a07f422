"""Run wrk with the POST-JSON Lua script and parse its ``--latency`` report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent.parent / "wrk" / "post_json.lua"
CHECK_SCRIPT = LUA_SCRIPT.with_name("post_json_check.lua")
_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_DURATION = r"([\d.]+)(us|ms|s|m|h)"


@dataclass
class WrkResult:
    """The figures the harness reads from one wrk run."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (it counts status >= 400)
    socket_errors: int  # connect + read + write + timeout
    output: str


@dataclass
class CheckResult:
    """Answers seen by a validation run (``post_json_check.lua``) and how many were wrong."""

    checked: int
    bad: int


def wrk_version() -> str:
    """Return wrk's own version line, e.g. 'wrk debian/4.1.0-3+b2 [epoll]'."""
    exe = shutil.which("wrk")
    if exe is None:
        raise FileNotFoundError("wrk not found: apt-get install -y wrk")
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=10).stdout
    first = out.splitlines()[0] if out else "wrk (unknown version)"
    return first.split(" Copyright")[0].strip()


def _wrk_argv(script: Path, url: str, args: list[str], threads: int, connections: int, duration: float) -> list[str]:
    """The wrk command line for a loopback ``url``; ``args`` go to the Lua script."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing non-loopback target {url}")
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout=5s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        *args,
    ]


def _run(argv: list[str], duration: float) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    return proc.stdout


def run_wrk(url: str, body: str, *, threads: int, connections: int, duration: float) -> WrkResult:
    """Run ``wrk -t -c -d --latency`` POSTing ``body`` to ``url`` (a loopback URL) and parse the report."""
    return parse_wrk(_run(_wrk_argv(LUA_SCRIPT, url, [body], threads, connections, duration), duration))


def run_wrk_check(url: str, body: str, expect: str, *, threads: int, connections: int, duration: float) -> CheckResult:
    """Short validation run: count answers that are not 200 or whose body lacks ``expect``."""
    out = _run(_wrk_argv(CHECK_SCRIPT, url, [body, expect], threads, connections, duration), duration)
    found = re.search(r"^checked (\d+) bad (\d+)$", out, re.M)
    if not found:
        raise ValueError(f"unexpected wrk check output:\n{out}")
    return CheckResult(checked=int(found.group(1)), bad=int(found.group(2)))


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk's text report (run with ``--latency``)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    p50 = re.search(rf"^\s+50%\s+{_DURATION}", text, re.M)
    p99 = re.search(rf"^\s+99%\s+{_DURATION}", text, re.M)
    total = re.search(r"^\s+(\d+) requests in", text, re.M)
    if not (rps and p50 and p99 and total):
        raise ValueError(f"unexpected wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=_to_ms(*p50.groups()),
        p99_ms=_to_ms(*p99.groups()),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
        output=text,
    )
