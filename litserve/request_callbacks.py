"""``on_request`` / ``on_response`` callbacks and request tracking in the API processes.

Only servers given callbacks (or ``track_requests=True``) use ``ObservedPredictEndpoint``; others serve
requests through the plain ``PredictEndpoint`` and pay nothing for this.
"""

from __future__ import annotations

import functools
import multiprocessing
from typing import Any, Callable, Optional

from litserve.callbacks import CallbackRunner, EventTypes
from litserve.routes import PredictEndpoint, Receive, Send


class RequestObserver:
    """Fires the request callbacks and counts the requests each API process is answering.

    With ``track_requests``, every API process writes its own count to a slot of an array shared with the
    others (created before they fork), so ``active_requests`` is the whole server's.
    """

    def __init__(self, callbacks: Optional[CallbackRunner], litserver: Any, track_requests: bool) -> None:
        self.callbacks = callbacks
        self.litserver = litserver
        self.track_requests = track_requests
        self.api_server = 0
        self._active = 0
        self._counts: Any = None

    def share_counts(self, num_api_servers: int) -> None:
        """Called before the API processes start: one slot per process."""
        if self.track_requests:
            self._counts = multiprocessing.RawArray("q", num_api_servers)

    @property
    def active_requests(self) -> Optional[int]:
        """Requests being answered by the whole server, or None unless ``track_requests=True``."""
        if not self.track_requests:
            return None
        if self._counts is None:
            return self._active
        return sum(self._counts)

    def request_started(self) -> None:
        self._set_active(self._active + 1)
        if self.callbacks is not None:
            self.callbacks.trigger_event(
                EventTypes.ON_REQUEST.value, active_requests=self.active_requests, litserver=self.litserver
            )

    def request_ended(self) -> None:
        self._set_active(self._active - 1)
        if self.callbacks is not None:
            self.callbacks.trigger_event(EventTypes.ON_RESPONSE.value, litserver=self.litserver)

    def _set_active(self, value: int) -> None:
        self._active = value
        if self._counts is not None:
            self._counts[self.api_server] = value


class ObservedPredictEndpoint(PredictEndpoint):
    """A predict endpoint that reports each request it hands to a worker, and its end, to ``observer``."""

    def __init__(self, *args: Any, observer: RequestObserver, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observer = observer

    @classmethod
    def observed_by(cls, observer: RequestObserver) -> Callable[..., ObservedPredictEndpoint]:
        """A constructor with the same arguments as ``PredictEndpoint``'s, reporting to ``observer``."""
        return functools.partial(cls, observer=observer)

    async def serve(self, content_type: str, body: bytes, receive: Receive, send: Send) -> None:
        self.observer.request_started()
        try:
            await super().serve(content_type, body, receive, send)
        finally:
            self.observer.request_ended()
