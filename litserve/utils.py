"""Small public names shared by user code and the loops (LitServe-compatible: ``from litserve.utils import ...``)."""

from __future__ import annotations

from enum import Enum


class LitAPIStatus(str, Enum):
    """What an ``Output`` of a continuous-batching ``step`` means for its request.

    ``OK``: an item of the response; more follow. ``FINISH_STREAMING``: the last item; the request is done.
    ``ERROR``: the request failed (its ``output`` is the exception or message); only that request ends.
    """

    OK = "OK"
    FINISH_STREAMING = "FINISH_STREAMING"
    ERROR = "ERROR"
