"""How litserve's log lines look: plain (uvicorn's style) or, with ``pretty_logs=True``, coloured by rich."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Dict, Optional, TextIO, Union


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


# --- configure_logging: the user's own configuration of the "litserve" logger ----------------------------

#: ``configure_logging``'s default line: time, process, logger, level, source line, message (LitServe's fields).
DEFAULT_LOG_FORMAT = (
    "%(asctime)s - %(processName)s[%(process)d] - %(name)s - %(levelname)s - %(filename)s:%(lineno)d - %(message)s"
)


@dataclass(frozen=True)
class LogConfig:
    """How the user configured the "litserve" logger; sent to worker processes so they log the same way."""

    level: int
    format: str = DEFAULT_LOG_FORMAT
    stream_name: str = "stdout"  # "stdout" or "stderr"; workers use stderr for any other stream
    use_rich: bool = False

    def apply(self, stream: Optional[TextIO] = None) -> None:
        """Replace the "litserve" logger's handlers with this configuration's one."""
        if self.use_rich:  # rich lays out the time, level and source line itself
            from rich.logging import RichHandler

            handler: logging.Handler = RichHandler(rich_tracebacks=True, markup=False)
            handler.setFormatter(logging.Formatter("%(message)s"))
        else:
            if stream is None:
                stream = sys.stdout if self.stream_name == "stdout" else sys.stderr
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter(self.format))
        library_logger = logging.getLogger("litserve")
        for old in list(library_logger.handlers):
            library_logger.removeHandler(old)
        library_logger.addHandler(handler)
        library_logger.setLevel(self.level)
        library_logger.propagate = False


_user_config: Optional[LogConfig] = None


def configure_logging(
    level: Union[int, str] = logging.INFO,
    format: str = DEFAULT_LOG_FORMAT,
    stream: TextIO = sys.stdout,
    use_rich: bool = False,
) -> None:
    """Configure litserve's logger (``"litserve"``) in this process and in the server's worker processes.

    ``level`` is a number or a name (``"debug"``, ``"INFO"``); lines use ``format`` and go to ``stream``
    (workers write to the same standard stream, stderr for any other), or through rich with ``use_rich``.
    Once called, ``LitServer.run`` leaves the logger as configured (its ``log_level`` still sets uvicorn's).
    """
    global _user_config
    stream_name = "stdout" if stream in (sys.stdout, sys.__stdout__) else "stderr"
    config = LogConfig(_log_level(level), format, stream_name, bool(use_rich))
    config.apply(stream)
    _user_config = config


def configure_default_logging(level: str, pretty: bool = False, prefix: str = "") -> None:
    """litserve's own set-up of its logger in one of its processes (workers pass a ``prefix``): one plain (or,
    with ``pretty``, rich) handler at ``level``. A logger the user set up with ``configure_logging`` is left
    as the user configured it."""
    if _user_config is not None:
        return
    library_logger = logging.getLogger("litserve")
    if not library_logger.handlers:
        library_logger.addHandler((pretty_handler if pretty else plain_handler)(prefix))
        library_logger.propagate = False
    library_logger.setLevel(level.upper())


def user_log_config() -> Optional[LogConfig]:
    """The configuration ``configure_logging`` set in this process, if it was called."""
    return _user_config


def _log_level(level: Union[int, str]) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise ValueError(f"level must be a logging level such as logging.INFO or 'info', got {level!r}")
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown logging level {level!r}: use debug, info, warning, error or critical")
    return value
