"""Friendly start-up warnings for likely mistakes: near-miss hook names and options that change nothing."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Dict, List

from litserve.api import LitAPI
from litserve.loops import ContinuousBatchingLoop

# Hooks litserve looks up by name beyond LitAPI's own methods: the routes' and every worker loop's.
_EXTRA_HOOKS = ("authorize", *ContinuousBatchingLoop.hooks)
# Spellings close enough to a hook to be a mistake, though difflib finds them far apart.
_SUFFIXES = ("_model", "_fn", "_func", "_hook")
_CUTOFF = 0.8


def hook_names() -> List[str]:
    """Every method litserve calls on a LitAPI by name, whichever loop serves it."""
    own = [name for name, _ in inspect.getmembers(LitAPI, inspect.isfunction) if not name.startswith("_")]
    return sorted({*own, *_EXTRA_HOOKS})


def near_miss_hooks(lit_api: LitAPI) -> List[str]:
    """One warning per method of the user's class whose name looks like a misspelt hook (never called)."""
    hooks = hook_names()
    warnings = []
    cls = type(lit_api)
    for name in _methods_defined_by_user(cls):
        if name in hooks or name.startswith("_"):
            continue
        match = _closest_hook(name, hooks)
        if match is not None:
            warnings.append(
                f"{cls.__name__}.{name} is never called by litserve: did you mean the hook '{match}'? "
                f"Rename it to {match} to have it used."
            )
    return warnings


def _methods_defined_by_user(cls: type) -> List[str]:
    names: List[str] = []
    for klass in cls.__mro__:
        if klass is LitAPI or not issubclass(klass, LitAPI):
            continue
        names.extend(name for name, value in vars(klass).items() if callable(value) and name not in names)
    return names


def _closest_hook(name: str, hooks: List[str]) -> Any:
    for hook in hooks:
        if name in (*(hook + suffix for suffix in _SUFFIXES), hook + "s", hook.rstrip("s")):
            return hook
    matches = difflib.get_close_matches(name, hooks, n=1, cutoff=_CUTOFF)
    return matches[0] if matches else None


def ineffective_server_options(given: Dict[str, Any]) -> List[str]:
    """LitServer options accepted so LitServe code runs unchanged, but that change nothing here."""
    warnings = []
    if given.get("fast_queue") is not None:
        warnings.append(
            f"fast_queue={given['fast_queue']!r} has no effect: requests always reach the workers over unix "
            "sockets, which is faster than either of LitServe's queues. Remove the argument to silence this."
        )
    return warnings


def ineffective_run_options(api_server_worker_type: Any, uvicorn_options: Dict[str, Any]) -> List[str]:
    """``run()`` arguments that change nothing here."""
    warnings = []
    if api_server_worker_type == "thread":
        warnings.append(
            "api_server_worker_type='thread' has no effect: API servers are always processes "
            "(set their number with num_api_servers)."
        )
    for name, instead in (("workers", "num_api_servers"), ("reload", "a restart of the script")):
        if name in uvicorn_options:
            warnings.append(f"run({name}=...) has no effect: litserve runs uvicorn itself; use {instead}.")
    return warnings
