"""The worker process: sets up the model on its device, then serves requests until told to stop."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
from dataclasses import dataclass
from typing import Any, List, Optional

from litserve.api import LitAPI
from litserve.callbacks import EventTypes
from litserve.log_format import configure_default_logging
from litserve.loggers import LogSink
from litserve.metrics import WorkerMetrics
from litserve.options import ApiOptions
from litserve.request_example import pydantic_request_model
from litserve.transport.worker_channel import ParentGoneError, WorkerChannel
from litserve.workers.callback_hooks import make_runner
from litserve.workers.protocol import JsonProtocol
from litserve.workers.selection import make_loop

logger = logging.getLogger("litserve")

# Exit status of a worker whose ``setup`` raised. It only says how the worker died: the supervisor tells a
# failed setup from a later crash by the ready event, which user code cannot set.
EXIT_SETUP_FAILED = 3


@dataclass
class WorkerSpec:
    """Everything a worker process needs, sent to it when it starts."""

    worker_id: int
    api_index: int
    device: str
    lit_api: LitAPI
    options: ApiOptions
    api_inboxes: List[str]  # where each API process listens
    log_level: str = "info"
    metrics_dir: Optional[str] = None  # where the worker records queue waits and batch sizes
    incarnation: int = 0  # how many times this worker was restarted before this process
    pretty_logs: bool = False  # write the log through rich, as the main process does
    callbacks: Any = None  # a CallbackRunner, or None when the server has no callbacks
    log_queue: Any = None  # where ``LitAPI.log`` sends entries for the loggers, or None without loggers
    log_config: Any = None  # the user's ``configure_logging`` (a LogConfig), applied in the worker too

    @property
    def name(self) -> str:
        return f"worker {self.worker_id} ({type(self.lit_api).__name__} on {self.device})"


def run_worker(spec: WorkerSpec, ready: Any) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the main process stops us.
    signal.signal(signal.SIGTERM, _exit_quietly)
    if spec.log_config is not None:
        spec.log_config.apply()
    else:
        configure_default_logging(spec.log_level, spec.pretty_logs, prefix="[litserve worker] ")
    parent = multiprocessing.parent_process()
    metrics = WorkerMetrics(spec.metrics_dir, spec.worker_id, spec.api_index) if spec.metrics_dir else None
    channel = WorkerChannel(spec.api_inboxes, parent.sentinel if parent else None, metrics)
    runner = make_runner(spec.lit_api, spec.options, spec.callbacks)
    spec.lit_api._log_sink = LogSink(spec.log_queue, metrics) if spec.log_queue is not None else None
    if spec.callbacks:
        spec.callbacks.trigger_event(EventTypes.BEFORE_SETUP.value, lit_api=spec.lit_api)
    spec.lit_api.device = spec.device  # as in LitServe: hooks may read ``self.device``
    try:
        runner.resolve(spec.lit_api.setup(spec.device))
    except WorkerStopped:  # the server stops while this worker is still in setup: not a failure
        channel.close()
        raise
    except BaseException:
        logger.exception("setup failed in %s; the server will stop", spec.name)
        channel.close()
        sys.exit(EXIT_SETUP_FAILED)
    if spec.callbacks:
        spec.callbacks.trigger_event(EventTypes.AFTER_SETUP.value, lit_api=spec.lit_api)
    ready.set()
    channel.open(spec.worker_id, spec.incarnation)
    api_spec = spec.options.spec
    if api_spec is not None:
        loop = api_spec.make_loop(runner, channel)
    else:
        loop = make_loop(runner, channel, JsonProtocol(pydantic_request_model(spec.lit_api)))
    try:
        loop.run()
    except ParentGoneError:
        logger.debug("%s: the server process is gone, exiting", spec.name)
    finally:
        channel.close()


class WorkerStopped(SystemExit):
    """The main process stopped this worker (SIGTERM): it exits with status 0, wherever it was."""


def _exit_quietly(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the exit itself
    raise WorkerStopped(0)
