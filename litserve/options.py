"""Option defaults, validation and resolution: the one place that knows what each option means."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, List, Optional, Union

from litserve.constants import DEFAULT_API_PATH


class _Unset:
    """Marks an option the user did not pass, so another source may fill it."""

    _instance = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

API_OPTION_DEFAULTS = {
    "max_batch_size": 1,
    "batch_timeout": 0.0,
    "api_path": DEFAULT_API_PATH,
    "stream": False,
    "spec": None,
    "enable_async": False,
    "loop": "auto",
}

DEFAULT_TIMEOUT = 30.0
# Requests of one API that may wait for a worker in each API process before new ones get 503. Large enough
# that bursts queue rather than fail, small enough to bound memory (1024 bodies) and to fail fast when the
# workers cannot keep up: a request that waits longer than ``timeout`` would get 504 anyway.
DEFAULT_MAX_QUEUE_SIZE = 1024
DEFAULT_SHUTDOWN_TIMEOUT = 30.0
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")


@dataclass(frozen=True)
class ApiOptions:
    """The effective per-API options after merging LitAPI, LitServer and defaults."""

    max_batch_size: int
    batch_timeout: float
    api_path: str
    stream: bool
    spec: Any
    enable_async: bool
    loop: Any = "auto"  # "auto" (picked from the other options) or a ContinuousBatchingLoop


def resolve_api_options(explicit: dict, server_given: dict) -> ApiOptions:
    """Merge options: explicit LitAPI values win over LitServer values, which win over defaults."""
    values = {}
    for name, default in API_OPTION_DEFAULTS.items():
        if name in explicit:
            values[name] = explicit[name]
        elif server_given.get(name, UNSET) is not UNSET and server_given.get(name) is not None:
            values[name] = server_given[name]
        else:
            values[name] = default
    validate_max_batch_size(values["max_batch_size"])
    validate_batch_timeout(values["batch_timeout"])
    validate_api_path(values["api_path"], "api_path")
    _validate_bool(values["stream"], "stream")
    _validate_bool(values["enable_async"], "enable_async")
    values["batch_timeout"] = float(values["batch_timeout"])
    return ApiOptions(**values)


def validate_max_batch_size(value: Any) -> None:
    if not is_int(value) or value < 1:
        raise ValueError(f"max_batch_size must be an integer >= 1, got {value!r}")


def validate_batch_timeout(value: Any) -> None:
    if not is_number(value) or value < 0:
        raise ValueError(f"batch_timeout must be a number of seconds >= 0, got {value!r}")


def validate_api_path(value: Any, name: str) -> None:
    if not isinstance(value, str) or not value.startswith("/"):
        raise ValueError(f"{name} must be a URL path starting with '/', got {value!r}")


def resolve_workers_per_device(value: Any, api_paths: List[str]) -> List[int]:
    """Workers per device for each API: one int for all, a list in API order, or a dict keyed by api_path."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(api_paths):
            raise ValueError(
                f"workers_per_device has {len(value)} entries for {len(api_paths)} APIs: give one per API, in order"
            )
        counts = list(value)
    elif isinstance(value, dict):
        unknown = sorted(set(value) - set(api_paths))
        if unknown:
            raise ValueError(
                f"workers_per_device names {', '.join(map(repr, unknown))}, which no API serves "
                f"(api_paths: {', '.join(api_paths)})"
            )
        missing = [path for path in api_paths if path not in value]
        if missing:
            raise ValueError(f"workers_per_device has no entry for api_path {', '.join(map(repr, missing))}")
        counts = [value[path] for path in api_paths]
    else:
        counts = [value] * len(api_paths)
    for count in counts:
        if not is_int(count) or count < 1:
            raise ValueError(f"workers_per_device values must be integers >= 1, got {count!r}")
    return [int(count) for count in counts]


def validate_accelerator(value: Any) -> None:
    if not isinstance(value, str) or value.lower() not in ACCELERATORS:
        raise ValueError(f"accelerator must be one of {', '.join(ACCELERATORS)}, got {value!r}")


def validate_devices(value: Any) -> None:
    if value == "auto":
        return
    if is_int(value) and value >= 1:
        return
    if isinstance(value, (list, tuple)) and value and all(is_int(d) and d >= 0 for d in value):
        return
    raise ValueError(f"devices must be 'auto', an integer >= 1 or a non-empty list of device ids, got {value!r}")


def resolve_timeout(value: Any) -> Optional[float]:
    """Seconds after arrival before a request gets 504, or None when disabled (False or -1)."""
    if value is False or value is None or (is_number(value) and value == -1):
        return None
    if not is_number(value) or value <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, or False/-1 to disable, got {value!r}")
    return float(value)


def resolve_max_payload_size(value: Any) -> Optional[int]:
    """Largest accepted request body in bytes, or None for no limit."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _parse_size(value)
    if not is_int(value) or value <= 0:
        raise ValueError(f"max_payload_size must be a positive number of bytes (or '10MB'), got {value!r}")
    return int(value)


def resolve_max_queue_size(value: Any) -> Optional[int]:
    """Most requests of one API waiting for a worker in each API process, or None for no limit."""
    if value is None:
        return None
    if not is_int(value) or value < 1:
        raise ValueError(f"max_queue_size must be an integer >= 1, or None for no limit, got {value!r}")
    return int(value)


def resolve_shutdown_timeout(value: Any) -> float:
    """Seconds that in-flight requests get to finish after SIGTERM or Ctrl-C."""
    if not is_number(value) or value < 0:
        raise ValueError(f"shutdown_timeout must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _parse_size(text: str) -> Union[int, str]:
    units = {"kb": 1024, "mb": 1024**2, "gb": 1024**3, "b": 1}
    lowered = text.strip().lower()
    for suffix, factor in units.items():
        if lowered.endswith(suffix):
            number = lowered[: -len(suffix)].strip()
            try:
                return int(float(number) * factor)
            except ValueError:
                return text
    try:
        return int(lowered)
    except ValueError:
        return text


def _validate_bool(value: Any, name: str) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def is_int(value: Any) -> bool:
    """An integer, but not a bool (``True`` is an ``int`` to Python, never a count to a user)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A real number, but not a bool nor NaN."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value == value
