"""Soak test: send 100,000+ mixed requests to real litserve servers and check that nothing leaks.

Starts ``servers/litserve_hello.py`` and ``servers/litserve_stream.py`` (each in its own session), warms
them up, records the resident memory (RSS, summed over each server's whole process tree) and the open file
descriptors of every process, then sends the traffic below from an asyncio client and measures again once
the servers are idle. PASS when, for each server, RSS grew by less than ``--max-rss-growth-mb`` (50) and the
number of open file descriptors is the same as before.

Traffic, per 100 requests (hello server unless noted):

- 84 normal ``POST /predict {"input": x}`` on keep-alive connections, answer checked (200, x**2);
- 4 broken JSON bodies (400), 2 unsupported content types (400), 2 ``GET /predict`` (405);
- 2 clients that send half of a body and close the connection, 2 that send a whole request and close
  without reading the answer (the server sees them leave before or while it answers);
- 3 streams of 20 items read to the end, 1 stream of 100,000 items closed after its first chunk
  (stream server).

With ``--duration`` (seconds instead of a request count), ``--hostile N`` (default 8) more clients attack
the hello server at the same time, in turn: a head trickled a byte at a time (408 after the server's header
timeout), a connection that sends nothing (408), a body that stops arriving (408 after the body timeout),
a 1 MB header and 10,000 headers (431), a 256 KB body in 1-byte chunks (200), and a pathological multipart
``Content-Type`` (400). Every answer is checked, and ``litserve_requests_total`` must show no 5xx at the end.

Run from the repository root (about 1-2 minutes on 2 cores):

    python benchmarks/soak.py                 # 100,000 requests
    python benchmarks/soak.py --requests 20000 --connections 16
    nice -n 10 python benchmarks/soak.py --duration 1800   # half an hour, RSS and FDs printed each minute

Exit status 0 on PASS, 1 on FAIL. Only the standard library is needed (uvloop is used when installed).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"

# (kind, how many of every 100 requests)
MIX = [
    ("ok", 84),
    ("bad_json", 4),
    ("bad_type", 2),
    ("wrong_method", 2),
    ("cut_body", 2),
    ("cut_response", 2),
    ("stream", 3),
    ("stream_cut", 1),
]
PATTERN = [kind for kind, count in MIX for _ in range(count)]
STREAM_ITEMS = 20
_HOSTILE_BYTES: Dict[str, bytes] = {}


def _hostile_bytes(kind: str) -> bytes:
    """The large hostile requests, built once: building them each time would stall the client's event loop."""
    if kind not in _HOSTILE_BYTES:
        if kind == "big_header":
            data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
        elif kind == "many_headers":
            headers = b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
            data = b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
        else:
            body = b'{"input": 3, "padding": "' + b"x" * 256 * 1024 + b'"}'
            chunks = b"".join(b"1\r\n" + body[i : i + 1] + b"\r\n" for i in range(len(body)))
            data = (
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
            )
        _HOSTILE_BYTES[kind] = data
    return _HOSTILE_BYTES[kind]


# Hostile clients (``--hostile``) and the status each must get.
HOSTILE = {
    "slow_head": 408,
    "silent": 408,
    "stalled_body": 408,
    "big_header": 431,
    "many_headers": 431,
    "tiny_chunks": 200,
    "bad_multipart": 400,
}
LONG_STREAM_ITEMS = 100_000


# --- processes and /proc -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def session_members(session: int) -> List[int]:
    """Live pids of a session (each server starts one: ``start_new_session=True``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return sorted(pids)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class Server:
    """A benchmark server script in its own session; ``usage()`` sums RSS and counts FDs over its processes."""

    def __init__(self, name: str, script: str, log_dir: Path, args: Sequence[str] = ()) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "servers" / script), "--port", str(self.port), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        give_up_at = time.monotonic() + timeout
        while time.monotonic() < give_up_at:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if http_status(self.port, "GET", "/health") == 200:
                return
            time.sleep(0.05)
        raise SystemExit(f"{self.name} not healthy after {timeout} s:\n{self.log_tail()}")

    def usage(self) -> Tuple[int, Dict[int, int]]:
        """(RSS in kB summed over the process tree, {pid: open file descriptors})."""
        pids = session_members(self.process.pid)
        return sum(rss_kb(pid) for pid in pids), {pid: fd_count(pid) for pid in pids}

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        give_up_at = time.monotonic() + 10
        while session_members(self.process.pid) and time.monotonic() < give_up_at:
            time.sleep(0.05)
        for pid in session_members(self.process.pid):
            os.kill(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def http_status(port: int, method: str, path: str, timeout: float = 2.0) -> int:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(65536)
        return int(head.split(b" ", 2)[1])
    except (OSError, IndexError, ValueError):
        return 0


def http_get(port: int, path: str, timeout: float = 10.0) -> str:
    chunks = []
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).partition(b"\r\n\r\n")[2].decode()


# --- the client ----------------------------------------------------------------------------------


def request_bytes(method: str, path: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\n"
    if method != "GET":
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


async def read_response(reader: asyncio.StreamReader, first_chunk_only: bool = False) -> Tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response: Content-Length or chunked."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        return status, await reader.readexactly(int(headers[b"content-length"]))
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        body = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body.append(await reader.readexactly(size))
            await reader.readexactly(2)
            if first_chunk_only:
                break
        return status, b"".join(body)
    return status, await reader.read()


class Client:
    """Sends the mixed traffic over ``connections`` concurrent tasks and tallies what happened."""

    def __init__(self, hello_port: int, stream_port: int) -> None:
        self.hello_port = hello_port
        self.stream_port = stream_port
        self.outcomes: Counter = Counter()
        self.problems: List[str] = []

    async def run(
        self, total: int, connections: int, offset: int = 0, until: Optional[float] = None, hostile: int = 0
    ) -> int:
        """Send ``total`` requests (or as many as fit before ``until``, a monotonic time); returns how many."""
        counter = itertools.count(offset) if until is not None else iter(range(offset, offset + total))
        sent = itertools.count()
        if hostile and until is not None:
            for kind in ("big_header", "many_headers", "tiny_chunks"):
                _hostile_bytes(kind)
        attackers = [asyncio.ensure_future(self._attacker(n, until)) for n in range(hostile if until else 0)]
        await asyncio.gather(*(self._worker(counter, until, sent) for _ in range(connections)))
        await asyncio.gather(*attackers)
        return next(sent)

    async def _worker(self, counter, until: Optional[float], sent) -> None:
        keep_alive: Optional[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = None
        for i in counter:
            if until is not None and time.monotonic() > until:
                break
            next(sent)
            kind = PATTERN[i % len(PATTERN)]
            try:
                if kind in ("ok", "bad_json", "bad_type", "wrong_method"):
                    if keep_alive is None:
                        keep_alive = await asyncio.open_connection(HOST, self.hello_port)
                    ok = await self._simple(kind, i, *keep_alive)
                    if not ok:
                        keep_alive[1].close()
                        keep_alive = None
                else:
                    await getattr(self, f"_{kind}")(i)
                    self._tally(kind, "done")
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                self._problem(kind, f"{type(exc).__name__}: {exc}")
                if keep_alive is not None:
                    keep_alive[1].close()
                    keep_alive = None
        if keep_alive is not None:
            keep_alive[1].close()
            await keep_alive[1].wait_closed()

    async def _simple(self, kind: str, i: int, reader, writer) -> bool:
        x = i % 1000
        if kind == "ok":
            data, want = request_bytes("POST", "/predict", b'{"input": %d}' % x), 200
        elif kind == "bad_json":
            data, want = request_bytes("POST", "/predict", b'{"input": '), 400
        elif kind == "bad_type":
            data, want = request_bytes("POST", "/predict", b"input=1", "text/plain"), 400
        else:
            data, want = request_bytes("GET", "/predict"), 405
        writer.write(data)
        status, body = await read_response(reader)
        if status != want:
            self._problem(kind, f"status {status}, wanted {want}: {body[:200]!r}")
            return True
        if kind == "ok" and json.loads(body) != {"output": float(x * x)}:
            self._problem(kind, f"wrong answer {body[:200]!r} for {x}")
            return True
        self._tally(kind, status)
        return True

    async def _cut_body(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        body = b'{"input": %d, "padding": "%s"}' % (i, b"x" * 64)
        data = request_bytes("POST", "/predict", body)
        writer.write(data[: len(data) - len(body) // 2])
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def _cut_response(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        writer.write(request_bytes("POST", "/predict", b'{"input": %d}' % i))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def _stream(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.stream_port)
        try:
            writer.write(request_bytes("POST", "/predict", b'{"n": %d}' % STREAM_ITEMS))
            status, body = await read_response(reader)
            lines = [line for line in body.split(b"\n") if line.strip()]
            if status != 200 or len(lines) != STREAM_ITEMS or json.loads(lines[-1]) != {"i": STREAM_ITEMS - 1}:
                self._problem("stream", f"status {status}, {len(lines)} lines: {body[-200:]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    async def _stream_cut(self, i: int) -> None:
        reader, writer = await asyncio.open_connection(HOST, self.stream_port)
        try:
            writer.write(request_bytes("POST", "/predict", b'{"n": %d}' % LONG_STREAM_ITEMS))
            status, _ = await read_response(reader, first_chunk_only=True)
            if status != 200:
                self._problem("stream_cut", f"status {status}")
        finally:
            writer.close()  # leaves in the middle of the stream
            await writer.wait_closed()

    async def _attacker(self, n: int, until: float) -> None:
        """Hostile clients against the hello server, one kind after another, until ``until``."""
        kinds = list(HOSTILE)
        for i in itertools.count(n):
            if time.monotonic() > until:
                return
            kind, want = kinds[i % len(kinds)], HOSTILE[kinds[i % len(kinds)]]
            try:
                status = await asyncio.wait_for(getattr(self, f"_{kind}")(), timeout=60)
            except (OSError, RuntimeError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                self._problem(kind, f"{type(exc).__name__}: {exc}")
                continue
            if status != want:
                self._problem(kind, f"status {status}, wanted {want}")
            else:
                self._tally(kind, status)

    async def _answer(self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> int:
        try:
            status, _ = await read_response(reader)
            return status
        finally:
            writer.close()
            await writer.wait_closed()

    async def _slow_head(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        head = request_bytes("POST", "/predict", b'{"input": 1}')
        answer = asyncio.ensure_future(self._answer(writer, reader))
        for byte in range(len(head)):
            if answer.done() or writer.is_closing():
                break  # the server gave up on it (408), as it should
            writer.write(head[byte : byte + 1])
            await asyncio.sleep(0.5)
        return await answer

    async def _silent(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        return await self._answer(writer, reader)

    async def _stalled_body(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        data = request_bytes("POST", "/predict", b'{"input": 1, "padding": "' + b"x" * 100 + b'"}')
        writer.write(data[:-20])
        return await self._answer(writer, reader)

    async def _big_header(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        writer.write(_hostile_bytes("big_header"))
        return await self._answer(writer, reader)

    async def _many_headers(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        writer.write(_hostile_bytes("many_headers"))
        return await self._answer(writer, reader)

    async def _tiny_chunks(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        writer.write(_hostile_bytes("tiny_chunks"))
        return await self._answer(writer, reader)

    async def _bad_multipart(self) -> int:
        reader, writer = await asyncio.open_connection(HOST, self.hello_port)
        content_type = "multipart/form-data; " + "a=b; " * 2000 + "boundary=xyz"
        writer.write(request_bytes("POST", "/predict", b"\r\n" * 50_000 + b"--xyz--\r\n", content_type))
        return await self._answer(writer, reader)

    def _tally(self, kind: str, outcome) -> None:
        self.outcomes[(kind, outcome)] += 1

    def _problem(self, kind: str, what: str) -> None:
        self.outcomes[(kind, "problem")] += 1
        if len(self.problems) < 20:
            self.problems.append(f"{kind}: {what}")


# --- measuring -------------------------------------------------------------------------------------


class Sampler:
    """Prints each server's RSS and FD count every ``every`` seconds from a thread, while the traffic runs."""

    def __init__(self, servers: List[Server], every: float, started: float) -> None:
        import threading

        self.servers = servers
        self.every = every
        self.started = started
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            parts = []
            for server in self.servers:
                rss, fds = server.usage()
                parts.append(f"{server.name} RSS {rss / 1024:.1f} MB, {sum(fds.values())} FDs")
            print(f"  t={time.monotonic() - self.started:5.0f} s: " + "; ".join(parts), flush=True)


def settle(servers: List[Server], baseline: Dict[str, Dict[int, int]], timeout: float) -> None:
    """Wait (bounded) until every server is idle: FD counts back to the baseline or no longer changing."""
    give_up_at = time.monotonic() + timeout
    last = None
    steady_since = time.monotonic()
    while time.monotonic() < give_up_at:
        now = {server.name: server.usage()[1] for server in servers}
        if now == baseline:
            return
        if now != last:
            last, steady_since = now, time.monotonic()
        elif time.monotonic() - steady_since > 3.0:
            return
        time.sleep(0.1)


def requests_by_code(port: int) -> Dict[str, float]:
    """``litserve_requests_total`` by status code, read from the server's /metrics (empty if unavailable)."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return {}
    counts: Dict[str, float] = {}
    for family in text_string_to_metric_families(http_get(port, "/metrics")):
        for sample in family.samples:
            if sample.name == "litserve_requests_total":
                counts[sample.labels["code"]] = counts.get(sample.labels["code"], 0) + sample.value
    return dict(sorted(counts.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100_000, help="requests after the warm-up")
    parser.add_argument("--warmup", type=int, default=5_000, help="requests before the first measurement")
    parser.add_argument("--connections", type=int, default=32, help="concurrent client tasks")
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--log-dir", type=Path, default=None, help="server logs (default: a new temp dir)")
    parser.add_argument("--duration", type=float, default=None, help="run this many seconds instead of --requests")
    parser.add_argument("--hostile", type=int, default=8, help="hostile clients during a --duration run")
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds between RSS/FD samples")
    args = parser.parse_args()

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="litserve-soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    servers = [Server("hello", "litserve_hello.py", log_dir), Server("stream", "litserve_stream.py", log_dir)]
    hello, stream = servers
    try:
        for server in servers:
            server.wait_healthy()
        client = Client(hello.port, stream.port)
        asyncio.run(client.run(args.warmup, args.connections))
        fds_idle = {server.name: server.usage()[1] for server in servers}
        settle(servers, fds_idle, timeout=10)
        before = {server.name: server.usage() for server in servers}

        client = Client(hello.port, stream.port)
        started = time.monotonic()
        until = None if args.duration is None else started + args.duration
        sampler = Sampler(servers, args.sample_every, started)
        sampler.start()
        try:
            sent = asyncio.run(
                client.run(args.requests, args.connections, offset=args.warmup, until=until, hostile=args.hostile)
            )
        finally:
            sampler.stop()
        elapsed = time.monotonic() - started
        settle(servers, {name: fds for name, (_, fds) in before.items()}, timeout=30)
        after = {server.name: server.usage() for server in servers}
        healthy = all(http_status(server.port, "GET", "/health") == 200 for server in servers)

        print(
            f"soak: {sent} requests in {elapsed:.1f} s ({sent / elapsed:.0f} req/s), "
            f"{args.connections} connections, after {args.warmup} warm-up requests; logs in {log_dir}"
        )
        print("requests by kind and outcome:")
        for (kind, outcome), count in sorted(client.outcomes.items(), key=str):
            print(f"  {kind:14} {outcome!s:8} {count}")
        for problem in client.problems:
            print(f"  problem: {problem}")
        server_errors = 0
        for server in servers:
            codes = requests_by_code(server.port)
            print(f"{server.name} server litserve_requests_total by code (warm-up included; 499: client left): {codes}")
            server_errors += sum(int(count) for code, count in codes.items() if code.startswith("5"))

        passed = healthy and not client.problems and server_errors == 0
        if server_errors:
            print(f"{server_errors} server-caused 5xx answers")
        limit_kb = args.max_rss_growth_mb * 1024
        print("\n| server | processes | RSS before (MB) | RSS after (MB) | growth (MB) | FDs before | FDs after | ok |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for server in servers:
            rss_0, fds_0 = before[server.name]
            rss_1, fds_1 = after[server.name]
            ok = (
                rss_1 - rss_0 < limit_kb and sum(fds_1.values()) == sum(fds_0.values()) and fds_0.keys() == fds_1.keys()
            )
            passed = passed and ok
            print(
                f"| {server.name} | {len(fds_1)} | {rss_0 / 1024:.1f} | {rss_1 / 1024:.1f} | "
                f"{(rss_1 - rss_0) / 1024:+.1f} | {sum(fds_0.values())} | {sum(fds_1.values())} | "
                f"{'yes' if ok else 'NO'} |"
            )
            if fds_0 != fds_1:
                print(f"  {server.name} FDs per process before {fds_0} after {fds_1}")
        if not healthy:
            print("a server no longer answers /health 200")
        print(
            f"\n{'PASS' if passed else 'FAIL'}: RSS growth < {args.max_rss_growth_mb:g} MB and FD growth 0 per server"
            f"{'' if not client.problems else f', {len(client.problems)}+ unexpected answers'}"
        )
        return 0 if passed else 1
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
