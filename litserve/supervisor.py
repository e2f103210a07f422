"""Starting, watching and stopping worker processes.

A thread in the main process waits on the workers' exit sentinels. A worker whose ``setup`` failed (or that
died before it was ever ready) stops the server; one that dies later is restarted with back-off, and
every API process is told so it can answer the requests the worker held.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import Callable, Dict, List, Optional

import zmq

from litserve.transport import messages
from litserve.workers.process import EXIT_SETUP_FAILED, WorkerSpec, run_worker

logger = logging.getLogger("litserve")

_BACKOFF_START_S = 0.5
_BACKOFF_MAX_S = 10.0
_STABLE_AFTER_S = 30.0


def describe_exit(exitcode: Optional[int]) -> str:
    """'exited with code 1' or 'was killed by SIGKILL'."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class _Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.process: Optional[multiprocessing.Process] = None
        self.ready: Optional[object] = None
        self.was_ready = False
        self.started_at = 0.0
        self.backoff = _BACKOFF_START_S
        self.restarts = 0
        self.watching = False  # running, or exited and its exit not yet handled


class Supervisor:
    """Owns the worker processes of one server."""

    def __init__(
        self,
        specs: List[WorkerSpec],
        api_inboxes: List[str],
        on_fatal: Callable[[str], None],
        restart_workers: bool = True,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._workers: Dict[int, _Worker] = {spec.worker_id: _Worker(spec) for spec in specs}
        self._api_inboxes = api_inboxes
        self._on_fatal = on_fatal
        self._restart_workers = restart_workers
        self._stopping = threading.Event()
        self._wakeup_r, self._wakeup_w = os.pipe()
        self._thread: Optional[threading.Thread] = None
        self.fatal_error: Optional[str] = None

    def start(self) -> None:
        for worker in self._workers.values():
            self._spawn(worker)
        self._thread = threading.Thread(target=self._watch, name="litserve-supervisor", daemon=True)
        self._thread.start()

    def wait_until_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until every worker finished setup (or one failed); True if all are ready."""
        give_up_at = None if timeout is None else time.monotonic() + timeout
        for worker in self._workers.values():
            while not worker.ready.wait(0.05):
                if self.fatal_error is not None or self._stopping.is_set():
                    return False
                if give_up_at is not None and time.monotonic() > give_up_at:
                    return False
        return self.fatal_error is None

    def _spawn(self, worker: _Worker) -> None:
        worker.ready = self._context.Event()
        worker.process = self._context.Process(
            target=run_worker, args=(worker.spec, worker.ready), name=f"litserve-worker-{worker.spec.worker_id}"
        )
        worker.process.daemon = False
        worker.process.start()
        worker.started_at = time.monotonic()
        worker.watching = True

    def _watch(self) -> None:
        notifier = _ApiNotifier(self._api_inboxes)
        restart_at: Dict[int, float] = {}
        try:
            while not self._stopping.is_set():
                by_sentinel = {w.process.sentinel: w for w in self._workers.values() if w.watching}
                timeout = None
                if restart_at:
                    timeout = max(0.0, min(restart_at.values()) - time.monotonic())
                ready = wait([*by_sentinel, self._wakeup_r], timeout)
                if self._stopping.is_set():
                    return
                for sentinel in ready:
                    worker = by_sentinel.get(sentinel)
                    if worker is not None:
                        self._handle_exit(worker, notifier, restart_at)
                now = time.monotonic()
                for worker_id, when in list(restart_at.items()):
                    if when <= now and not self._stopping.is_set():
                        del restart_at[worker_id]
                        worker = self._workers[worker_id]
                        worker.restarts += 1
                        logger.info("restarting %s (restart %d)", worker.spec.name, worker.restarts)
                        self._spawn(worker)
        finally:
            notifier.close()

    def _handle_exit(self, worker: _Worker, notifier: _ApiNotifier, restart_at: Dict[int, float]) -> None:
        worker.watching = False
        process = worker.process
        process.join(timeout=1)
        description = describe_exit(process.exitcode)
        was_ready = worker.ready.is_set() or worker.was_ready
        worker.was_ready = was_ready
        notifier.worker_exited(worker.spec.worker_id, description)
        if process.exitcode == EXIT_SETUP_FAILED or not was_ready:
            self._fail(f"{worker.spec.name} {description} during setup")
            return
        if not self._restart_workers:
            self._fail(f"{worker.spec.name} {description} (restart_workers=False)")
            return
        if time.monotonic() - worker.started_at > _STABLE_AFTER_S:
            worker.backoff = _BACKOFF_START_S
        delay = worker.backoff
        worker.backoff = min(worker.backoff * 2, _BACKOFF_MAX_S)
        logger.error("%s %s; restarting it in %.1f s", worker.spec.name, description, delay)
        restart_at[worker.spec.worker_id] = time.monotonic() + delay

    def _fail(self, reason: str) -> None:
        if self.fatal_error is None:
            self.fatal_error = reason
            logger.error("stopping the server: %s", reason)
            self._stopping.set()
            self._on_fatal(reason)

    def stop(self, grace: float = 5.0) -> None:
        """Stop watching, then terminate every worker (SIGTERM, then SIGKILL after ``grace`` seconds)."""
        self._stopping.set()
        os.write(self._wakeup_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        processes = [w.process for w in self._workers.values() if w.process is not None]
        for process in processes:
            if process.is_alive():
                process.terminate()
        give_up_at = time.monotonic() + grace
        for process in processes:
            process.join(timeout=max(0.0, give_up_at - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join(timeout=1)
        for fd in (self._wakeup_r, self._wakeup_w):
            try:
                os.close(fd)
            except OSError:
                pass


class _ApiNotifier:
    """Tells every API process that a worker exited."""

    def __init__(self, api_inboxes: List[str]) -> None:
        self._context = zmq.Context()
        self._sockets = []
        for address in api_inboxes:
            sock = self._context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 500)
            sock.connect(address)
            self._sockets.append(sock)

    def worker_exited(self, worker_id: int, description: str) -> None:
        data = messages.encode((messages.WORKER_EXITED, worker_id, description))
        for sock in self._sockets:
            sock.send(data)

    def close(self) -> None:
        self._context.destroy(linger=500)
