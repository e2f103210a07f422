"""Starting, watching and stopping worker processes.

A thread in the main process waits on the workers' exit sentinels. A worker that dies before it ever said it
was ready (its ``setup`` failed) stops the server; one that dies later is restarted with back-off, and
every API process is told so it can answer the requests the worker held. Workers die with the main
process: they watch its sentinel while idle and, on Linux, the kernel kills them if it dies while they work.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any, Callable, Dict, List, Optional

from litserve.metrics import ProcessMetrics
from litserve.transport import messages
from litserve.workers.process import WorkerSpec, run_worker

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
        metrics: Optional[ProcessMetrics] = None,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._workers: Dict[int, _Worker] = {spec.worker_id: _Worker(spec) for spec in specs}
        self._api_inboxes = api_inboxes
        self._on_fatal = on_fatal
        self._restart_workers = restart_workers
        self._metrics = metrics
        self._stopping = threading.Event()
        self._spawn_lock = threading.Lock()
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
            target=_worker_main,
            args=(replace(worker.spec, incarnation=worker.restarts), worker.ready, os.getpid()),
            name=f"litserve-worker-{worker.spec.worker_id}",
        )
        worker.process.daemon = False
        worker.process.start()
        worker.started_at = time.monotonic()
        worker.watching = True

    def _watch(self) -> None:
        restart_at: Dict[int, float] = {}
        # Runs until stop() has joined the workers and wakes it: on Linux, the workers this thread
        # restarted are killed by the kernel when it ends (PR_SET_PDEATHSIG follows the spawning thread).
        while True:
            by_sentinel = {w.process.sentinel: w for w in self._workers.values() if w.watching}
            timeout = None
            if restart_at:
                timeout = max(0.0, min(restart_at.values()) - time.monotonic())
            ready = wait([*by_sentinel, self._wakeup_r], timeout)
            if self._wakeup_r in ready:
                return
            try:
                self._handle_ready(ready, by_sentinel, restart_at)
            except Exception:
                logger.exception("error while supervising the workers; still watching")

    def _handle_ready(self, ready: list, by_sentinel: Dict[Any, _Worker], restart_at: Dict[int, float]) -> None:
        for sentinel in ready:
            worker = by_sentinel.get(sentinel)
            if worker is not None:
                self._handle_exit(worker, restart_at)
        if self.fatal_error is not None or self._stopping.is_set():
            restart_at.clear()  # the server is stopping: no more restarts
        now = time.monotonic()
        for worker_id, when in list(restart_at.items()):
            if when <= now:
                del restart_at[worker_id]
                self._restart(self._workers[worker_id])

    def _restart(self, worker: _Worker) -> None:
        with self._spawn_lock:
            if self._stopping.is_set():
                return
            worker.restarts += 1
            logger.info("restarting %s (restart %d)", worker.spec.name, worker.restarts)
            if self._metrics is not None:
                self._metrics.count_restart(worker.spec.api_index)
            self._spawn(worker)

    def _handle_exit(self, worker: _Worker, restart_at: Dict[int, float]) -> None:
        worker.watching = False
        if self._stopping.is_set():
            return  # stop() is terminating it
        process = worker.process
        process.join(timeout=1)
        description = describe_exit(process.exitcode)
        # Only the worker's own ready signal says setup finished: user code can exit with any status.
        was_ready = worker.ready.is_set() or worker.was_ready
        worker.was_ready = was_ready
        # Every API process answers the requests this worker held, naming how it died.
        notice = (messages.WORKER_EXITED, worker.spec.worker_id, worker.restarts, description)
        messages.send_to_each(self._api_inboxes, notice)
        if self.fatal_error is not None:
            logger.info("%s %s while the server stops", worker.spec.name, description)
            return
        if not was_ready:
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
        # Keep watching: the server drains, and the API processes must still hear of workers that exit.
        if self.fatal_error is None:
            self.fatal_error = reason
            logger.error("stopping the server: %s", reason)
            self._on_fatal(reason)

    def stop(self, grace: float = 5.0) -> None:
        """Terminate every worker (SIGTERM, then SIGKILL after ``grace`` seconds), then stop watching.

        The watching thread outlives the workers: on Linux, workers it restarted die with it.
        """
        with self._spawn_lock:
            self._stopping.set()  # from here on, nothing is spawned
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
        os.write(self._wakeup_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._wakeup_r, self._wakeup_w):
            try:
                os.close(fd)
            except OSError:
                pass


def _worker_main(spec: WorkerSpec, ready: Any, parent_pid: int) -> None:
    """Entry point of a worker process: dies with the main process, then runs the worker."""
    _die_with_parent(parent_pid)
    run_worker(spec, ready)


def _die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux), even in the middle of ``predict``.

    Elsewhere, a worker notices its parent's death when it next waits for requests.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        except (OSError, AttributeError):
            logger.debug("prctl(PR_SET_PDEATHSIG) is unavailable", exc_info=True)
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before we asked to follow it
