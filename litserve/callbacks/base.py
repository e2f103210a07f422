"""Callbacks: user code run at fixed points of the server's life and of every request.

Worker hooks (``on_before_setup`` ... ``on_after_encode_response``) run in each worker process and get
``lit_api=``; server hooks run in the API processes (``on_request``, ``on_response``) or the main process
(``on_server_start``, ``on_server_end``) and get ``litserver=`` (and ``active_requests=`` for ``on_request``).
A callback that raises is logged; the request goes on. With no callbacks nothing is called at all.

Example::

    class PredictTimer(ls.Callback):
        def on_before_predict(self, lit_api):
            self._start = time.perf_counter()

        def on_after_predict(self, lit_api):
            print(f"predict took {time.perf_counter() - self._start:.3f} s")

    server = ls.LitServer(MyAPI(), callbacks=[PredictTimer()])
"""

from __future__ import annotations

import enum
import logging
from typing import Any, List, Optional, Sequence, Union

logger = logging.getLogger("litserve")


class EventTypes(enum.Enum):
    """The name of every callback hook."""

    BEFORE_SETUP = "on_before_setup"
    AFTER_SETUP = "on_after_setup"
    BEFORE_DECODE_REQUEST = "on_before_decode_request"
    AFTER_DECODE_REQUEST = "on_after_decode_request"
    BEFORE_ENCODE_RESPONSE = "on_before_encode_response"
    AFTER_ENCODE_RESPONSE = "on_after_encode_response"
    BEFORE_PREDICT = "on_before_predict"
    AFTER_PREDICT = "on_after_predict"
    ON_SERVER_START = "on_server_start"
    ON_SERVER_END = "on_server_end"
    ON_REQUEST = "on_request"
    ON_RESPONSE = "on_response"


class Callback:
    """Base class of callbacks: override the hooks you need; the others do nothing."""

    def on_before_setup(self, *args: Any, **kwargs: Any) -> None:
        """In each worker, before ``LitAPI.setup``."""

    def on_after_setup(self, *args: Any, **kwargs: Any) -> None:
        """In each worker, after ``LitAPI.setup`` succeeded."""

    def on_before_decode_request(self, *args: Any, **kwargs: Any) -> None:
        """Before ``decode_request`` of each request."""

    def on_after_decode_request(self, *args: Any, **kwargs: Any) -> None:
        """After ``decode_request`` of each request."""

    def on_before_encode_response(self, *args: Any, **kwargs: Any) -> None:
        """Before ``encode_response`` of each request."""

    def on_after_encode_response(self, *args: Any, **kwargs: Any) -> None:
        """After ``encode_response`` of each request (for a stream: after its last item)."""

    def on_before_predict(self, *args: Any, **kwargs: Any) -> None:
        """Before ``predict`` (once per batch when batching)."""

    def on_after_predict(self, *args: Any, **kwargs: Any) -> None:
        """After ``predict`` returned (for a generator: once it is created)."""

    def on_server_start(self, *args: Any, **kwargs: Any) -> None:
        """In the main process, before the workers start."""

    def on_server_end(self, *args: Any, **kwargs: Any) -> None:
        """In the main process, once the server has drained and stopped (also after SIGTERM or Ctrl-C)."""

    def on_request(self, *args: Any, **kwargs: Any) -> None:
        """In the API process, when a request is handed to a worker."""

    def on_response(self, *args: Any, **kwargs: Any) -> None:
        """In the API process, once a request's reply has been sent to its client."""


class NoopCallback(Callback):
    """A callback that does nothing."""


class CallbackRunner:
    """Calls every callback's hook of one event, in order; one that raises is logged and skipped."""

    def __init__(self, callbacks: Union[Callback, Sequence[Callback], None] = None) -> None:
        self._callbacks: List[Callback] = []
        if callbacks is not None:
            self._add_callbacks(callbacks)

    def _add_callbacks(self, callbacks: Union[Callback, Sequence[Callback]]) -> None:
        items = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
        for callback in items:
            if not isinstance(callback, Callback):
                raise ValueError(f"callbacks must be litserve.Callback instances, got {callback!r}")
        self._callbacks.extend(items)

    @property
    def callbacks(self) -> List[Callback]:
        return list(self._callbacks)

    def __bool__(self) -> bool:
        return bool(self._callbacks)

    def trigger_event(self, event_name: Union[str, EventTypes], *args: Any, **kwargs: Any) -> None:
        """Call ``event_name`` on every callback with the given arguments."""
        name = event_name.value if isinstance(event_name, EventTypes) else event_name
        for callback in self._callbacks:
            try:
                getattr(callback, name)(*args, **kwargs)
            except Exception:
                logger.exception("callback %s raised in %s; the server goes on", type(callback).__name__, name)


def callback_runner(callbacks: Any) -> Optional[CallbackRunner]:
    """A runner for the ``callbacks=`` argument of LitServer, or None when there are none (nothing to call)."""
    if callbacks is None or (isinstance(callbacks, (list, tuple)) and not callbacks):
        return None
    if not isinstance(callbacks, (Callback, list, tuple)):
        raise ValueError(f"callbacks must be a litserve.Callback or a list of them, got {callbacks!r}")
    return CallbackRunner(callbacks)
