"""Small public names shared by user code and the loops (LitServe-compatible: ``from litserve.utils import ...``).

Worker processes import this module: it loads neither the HTTP stack nor the debugger until they are used.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from typing import TYPE_CHECKING, Any, ContextManager, Optional

from litserve.log_format import DEFAULT_LOG_FORMAT, configure_logging
from litserve.status import LitAPIStatus

if TYPE_CHECKING:
    from types import FrameType

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "LitAPIStatus",
    "add_log_handler",
    "configure_logging",
    "is_package_installed",
    "set_log_level",
    "set_trace",
    "set_trace_if_debug",
    "wrap_litserve_start",
]


def set_log_level(level: Any) -> None:
    """Set the level of litserve's logger (``"litserve"``) in this process."""
    logging.getLogger("litserve").setLevel(level)


def add_log_handler(handler: logging.Handler) -> None:
    """Add a handler to litserve's logger (``"litserve"``) in this process, e.g. a ``logging.FileHandler``."""
    logging.getLogger("litserve").addHandler(handler)


def set_trace(frame: Optional[FrameType] = None) -> None:
    """Stop in pdb at the caller's next line; works inside worker processes (commands come from the terminal
    the server was started in). A request paused there still times out: serve with ``timeout=False``."""
    from litserve.debugger import set_trace as _set_trace

    _set_trace(frame or sys._getframe().f_back)


def set_trace_if_debug(debug_env_var: str = "LITSERVE_DEBUG", debug_env_var_value: str = "1") -> None:
    """``set_trace()`` only when debugging is on: the environment variable ``LITSERVE_DEBUG`` is ``1``."""
    import os

    if os.environ.get(debug_env_var) == debug_env_var_value:
        set_trace(sys._getframe().f_back)


def is_package_installed(package_name: str) -> bool:
    """Whether ``package_name`` can be imported, without importing it."""
    return importlib.util.find_spec(package_name) is not None


def wrap_litserve_start(server: Any, worker_monitor: bool = False) -> ContextManager[Any]:
    """Test helper: start ``server``'s workers for a ``with`` block, so ``TestClient(server.app)`` reaches them.

    Example::

        with wrap_litserve_start(server) as server, TestClient(server.app) as client:
            assert client.post("/predict", json={"input": 4.0}).json() == {"output": 16.0}
    """
    # Loaded by name: utils stays a leaf (the loops import it), so no import chain runs back to the server.
    return importlib.import_module("litserve.in_process").started_in_process(server)


def __getattr__(name: str) -> Any:
    if name == "ForkedPdb":  # LitServe's name; loads pdb only when asked for
        from litserve.debugger import ForkedPdb

        return ForkedPdb
    raise AttributeError(f"module 'litserve.utils' has no attribute {name!r}")
