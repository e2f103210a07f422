"""The status of a continuous-batching ``Output``: a leaf module that user code, loops and workers all import."""

from __future__ import annotations

from enum import Enum

__all__ = ["LitAPIStatus"]


class LitAPIStatus(str, Enum):
    """What an ``Output`` of a continuous-batching ``step`` means for its request.

    ``OK``: an item of the response. ``FINISH_STREAMING``: the request is done; its response ends here and
    the output's own payload is not sent (write ``Output(uid, "", LitAPIStatus.FINISH_STREAMING)`` after the
    last item, as in LitServe). ``ERROR``: the request failed (its ``output`` is the exception or message);
    only that request ends.
    """

    OK = "OK"
    FINISH_STREAMING = "FINISH_STREAMING"
    ERROR = "ERROR"
