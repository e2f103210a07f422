"""The access log: uvicorn's line per request, written without the logging machinery where it can be.

uvicorn logs each response through the ``uvicorn.access`` logger: a ``LogRecord``, a copy of it in its
formatter, the status phrase looked up, a flush. On a busy server that costs as much as serving a small
request. While that logger is configured as uvicorn configures it (one plain stream handler, uvicorn's format,
no colours, no filters), ``DirectAccessLog`` writes the very same line straight to that handler's stream.
Any other configuration (a ``log_config`` of the user's, colours on a terminal, ``pretty_logs``, the API-key
redaction filter) keeps uvicorn's logger, so what the user configured is what they get.
"""

from __future__ import annotations

import http
import logging
from typing import Any, Optional

ACCESS_LOGGER = "uvicorn.access"
_UVICORN_FORMAT = '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s'
_PHRASES = {status.value: status.phrase for status in http.HTTPStatus}


class DirectAccessLog:
    """Stands in for the ``uvicorn.access`` logger in uvicorn's protocols: ``info`` writes the line at once."""

    __slots__ = ("handler",)

    def __init__(self, handler: logging.StreamHandler) -> None:
        self.handler = handler

    def info(self, message: str, client: str, method: str, path: str, version: str, status: int) -> None:
        line = f'INFO:     {client} - "{method} {path} HTTP/{version}" {status} {_PHRASES.get(status, "")}\n'
        handler = self.handler
        handler.acquire()
        try:
            handler.stream.write(line)
            handler.stream.flush()
        except Exception:  # as logging does: a log that cannot be written never fails the request
            pass
        finally:
            handler.release()


def direct_access_log(logger: Any) -> Optional[DirectAccessLog]:
    """A ``DirectAccessLog`` for ``logger`` if it is uvicorn's access logger, configured as uvicorn does."""
    if not isinstance(logger, logging.Logger) or logger.name != ACCESS_LOGGER or logger.filters or logger.propagate:
        return None
    if logger.disabled or not logger.isEnabledFor(logging.INFO) or len(logger.handlers) != 1:
        return None
    from uvicorn.logging import AccessFormatter

    handler = logger.handlers[0]
    formatter = handler.formatter
    plain_stream = type(handler) is logging.StreamHandler and not handler.filters and handler.level <= logging.INFO
    if not plain_stream or type(formatter) is not AccessFormatter or formatter._fmt != _UVICORN_FORMAT:
        return None
    if formatter.use_colors:
        return None
    return DirectAccessLog(handler)
