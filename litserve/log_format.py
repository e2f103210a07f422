"""How litserve's log lines look: plain (uvicorn's style) or, with ``pretty_logs=True``, coloured by rich."""

from __future__ import annotations

import logging
from typing import Any, Dict


def plain_handler(prefix: str = "") -> logging.Handler:
    """``INFO:     message``, the same layout as uvicorn's own lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(levelname)s:     {prefix}%(message)s"))
    return handler


def pretty_handler(prefix: str = "") -> logging.Handler:
    """A rich handler: time, coloured level, message."""
    from rich.logging import RichHandler

    handler = RichHandler(show_path=False, rich_tracebacks=True, markup=False)
    handler.setFormatter(logging.Formatter(f"{prefix}%(message)s"))
    return handler


def pretty_uvicorn_log_config() -> Dict[str, Any]:
    """uvicorn's ``log_config`` with its loggers written through rich too."""
    handler = {"()": "rich.logging.RichHandler", "show_path": False, "markup": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"rich": handler},
        "loggers": {
            "uvicorn": {"handlers": ["rich"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": ["rich"], "level": "INFO", "propagate": False},
        },
    }
