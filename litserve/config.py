"""The server's configuration: every ``LitServer`` option validated once into a frozen object.

``ServerConfig`` holds what ``LitServer(...)`` was given, resolved (defaults filled in, paths checked, per-API
options merged). App assembly and the processes read it and never resolve an option again, so each option
flows one way: from here to where it is used.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from litserve import admin
from litserve.api import LitAPI, is_async_hook, is_generator_hook
from litserve.callbacks import CallbackRunner, callback_runner
from litserve.devices import resolve_accelerator, resolve_devices
from litserve.http_protocol import resolve_client_timeout
from litserve.loggers import Logger, check_loggers, mounts
from litserve.loops import requests_run_at_once, resolve_loop
from litserve.middlewares import check_middlewares
from litserve.options import (
    UNSET,
    ApiOptions,
    resolve_api_options,
    resolve_max_payload_size,
    resolve_max_queue_size,
    resolve_shutdown_timeout,
    resolve_timeout,
    resolve_workers_per_device,
    validate_accelerator,
    validate_api_path,
    validate_devices,
)
from litserve.startup_warnings import ineffective_server_options, near_miss_hooks

# Liveness: 200 while the API process's event loop runs, whatever the workers do (``/health`` is readiness).
LIVENESS_PATH = "/livez"
_HOOKS = ("decode_request", "batch", "predict", "unbatch", "encode_response", "setup")
# Options each LitAPI gets from its resolved ApiOptions (LitServe's code reads them on the API).
_API_ATTRIBUTES = ("max_batch_size", "batch_timeout", "api_path", "stream", "spec", "enable_async")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``LitServer(...)`` was given, validated and resolved; build it with ``ServerConfig.create``."""

    lit_apis: Tuple[LitAPI, ...]
    api_options: Tuple[ApiOptions, ...]
    workers_per_api: Tuple[int, ...]  # worker processes per device for each API
    run_at_once: Tuple[int, ...]  # requests one worker of each API runs at the same time
    accelerator: str
    devices: Tuple[str, ...]
    workers_per_device: Any  # as given: shown at ``info_path``
    timeout: Optional[float]
    max_payload_size: Optional[int]
    max_queue_size: Optional[int]
    shutdown_timeout: float
    request_header_timeout: Optional[float]
    request_body_timeout: Optional[float]
    healthcheck_path: str
    info_path: str
    metrics_path: Optional[str]
    shutdown_path: Optional[str]  # None unless ``enable_shutdown_api``
    shutdown_api_key: Optional[str]
    model_metadata: Any
    restart_workers: bool
    track_requests: bool
    disable_openapi_url: bool
    middlewares: Tuple[Any, ...]
    callbacks: Optional[CallbackRunner]
    loggers: Tuple[Logger, ...]
    startup_warnings: Tuple[str, ...]

    @classmethod
    def create(cls, lit_api: Any, **options: Any) -> ServerConfig:
        """Validate ``LitServer``'s arguments (``lit_api`` and its keyword options) and resolve them.

        Raises ``ValueError`` with the option's name for anything invalid. Sets each LitAPI's resolved
        options on it (``api.max_batch_size``, ...), as LitServe does.
        """
        lit_apis = list(lit_api) if isinstance(lit_api, (list, tuple)) else [lit_api]
        if not lit_apis or not all(isinstance(api, LitAPI) for api in lit_apis):
            raise ValueError("lit_api must be a LitAPI instance or a non-empty list of them")
        _check_server_options(options)
        callbacks = callback_runner(options["callbacks"])
        loggers = check_loggers(options["loggers"])
        shutdown_path = options["shutdown_path"] if options["enable_shutdown_api"] else None
        shutdown_api_key = admin.shutdown_api_key() if shutdown_path is not None else None
        if shutdown_path is not None:
            validate_api_path(shutdown_path, "shutdown_path")
        _check_json_serializable(options["model_metadata"])
        if not isinstance(options["restart_workers"], bool):
            raise ValueError(f"restart_workers must be True or False, got {options['restart_workers']!r}")
        warnings = ineffective_server_options({"fast_queue": options["fast_queue"]})
        api_options = _resolve_apis(lit_apis, options, warnings)
        _check_unique_paths(api_options, _server_paths(options, shutdown_path, loggers))
        accelerator = resolve_accelerator(options["accelerator"])
        devices = resolve_devices(accelerator, options["devices"])
        workers_per_api = resolve_workers_per_device(options["workers_per_device"], _paths(api_options))
        timeout = resolve_timeout(options["timeout"])
        _check_batch_timeout_within_timeout(api_options, timeout)
        return cls(
            lit_apis=tuple(lit_apis),
            api_options=tuple(api_options),
            workers_per_api=tuple(workers_per_api),
            run_at_once=tuple(requests_run_at_once(api, opts) for api, opts in zip(lit_apis, api_options)),
            accelerator=accelerator,
            devices=tuple(devices),
            workers_per_device=options["workers_per_device"],
            timeout=timeout,
            max_payload_size=resolve_max_payload_size(options["max_payload_size"]),
            max_queue_size=resolve_max_queue_size(options["max_queue_size"]),
            shutdown_timeout=resolve_shutdown_timeout(options["shutdown_timeout"]),
            middlewares=tuple(check_middlewares(options["middlewares"])),
            request_header_timeout=resolve_client_timeout(options["request_header_timeout"], "request_header_timeout"),
            request_body_timeout=resolve_client_timeout(options["request_body_timeout"], "request_body_timeout"),
            healthcheck_path=options["healthcheck_path"],
            info_path=options["info_path"],
            metrics_path=options["metrics_path"],
            shutdown_path=shutdown_path,
            shutdown_api_key=shutdown_api_key,
            model_metadata=options["model_metadata"],
            restart_workers=options["restart_workers"],
            track_requests=options["track_requests"],
            disable_openapi_url=options["disable_openapi_url"],
            callbacks=callbacks,
            loggers=tuple(loggers),
            startup_warnings=tuple(warnings),
        )

    def info(self) -> Dict[str, Any]:
        """The body of ``info_path``."""
        return {
            "model": self.model_metadata,
            "server": {
                "accelerator": self.accelerator,
                "devices": list(self.devices),
                "workers_per_device": self.workers_per_device,
                "timeout": self.timeout,
                "max_payload_size": self.max_payload_size,
                "max_queue_size": self.max_queue_size,
                "shutdown_timeout": self.shutdown_timeout,
                "apis": [
                    {
                        "name": type(api).__name__,
                        "api_path": opts.api_path,
                        "max_batch_size": opts.max_batch_size,
                        "batch_timeout": opts.batch_timeout,
                        "stream": opts.stream,
                    }
                    for api, opts in zip(self.lit_apis, self.api_options)
                ],
            },
        }


def _check_server_options(options: Dict[str, Any]) -> None:
    validate_accelerator(options["accelerator"])
    validate_devices(options["devices"])
    validate_api_path(options["healthcheck_path"], "healthcheck_path")
    validate_api_path(options["info_path"], "info_path")
    if options["api_path"] is not None:
        validate_api_path(options["api_path"], "api_path")
    if options["metrics_path"] is not None:
        validate_api_path(options["metrics_path"], "metrics_path")


def _resolve_apis(lit_apis: List[LitAPI], options: Dict[str, Any], warnings: List[str]) -> List[ApiOptions]:
    """Each API's options: its own, else the server's, else the defaults. Adds near-miss hook warnings."""
    server_given = {name: options[name] for name in ("max_batch_size", "batch_timeout", "stream", "spec", "api_path")}
    server_given["loop"] = UNSET if options["loop"] == "auto" else options["loop"]
    resolved = []
    for api in lit_apis:
        opts = resolve_loop(resolve_api_options(api._resolved_explicit_options(), server_given))
        if opts.spec is not None:
            opts = _bind_spec(api, opts)
        _check_hooks(api, opts)
        warnings.extend(near_miss_hooks(api))
        for name in _API_ATTRIBUTES:
            setattr(api, name, getattr(opts, name))
        resolved.append(opts)
    return resolved


def _paths(api_options: Sequence[ApiOptions]) -> List[str]:
    return [opts.api_path for opts in api_options]


def _server_paths(
    options: Dict[str, Any], shutdown_path: Optional[str], loggers: List[Logger]
) -> List[Tuple[str, str]]:
    """The server's own routes, as (path, the option that set it) pairs."""
    paths = [(options["healthcheck_path"], "healthcheck_path"), (options["info_path"], "info_path")]
    paths.append((LIVENESS_PATH, "the liveness check"))
    if options["metrics_path"] is not None:
        paths.append((options["metrics_path"], "metrics_path"))
    if shutdown_path is not None:
        paths.append((shutdown_path, "shutdown_path"))
    paths.extend((path, "a logger's mount") for path, _ in mounts(loggers))
    return paths


def _check_hooks(api: LitAPI, opts: ApiOptions) -> None:
    name = type(api).__name__
    if opts.loop != "auto":
        missing = [hook for hook in ("add_request", "step") if not callable(getattr(api, hook, None))]
        if missing:
            raise ValueError(f"loop=ContinuousBatchingLoop() needs {name}.{missing[0]}; see litserve.loops")
        return
    if type(api).predict is LitAPI.predict:
        raise ValueError(f"{name} must implement predict")
    if not opts.enable_async:
        async_hooks = [hook for hook in _HOOKS if is_async_hook(getattr(api, hook))]
        if async_hooks:
            raise ValueError(f"{name}.{async_hooks[0]} is async: pass enable_async=True to LitAPI to use async hooks")
    if opts.spec is None:
        predict_streams = is_generator_hook(api.predict)
        if opts.stream and not predict_streams:
            raise ValueError(f"stream=True needs {name}.predict to be a generator (use yield)")
        if not opts.stream and predict_streams:
            raise ValueError(f"{name}.predict is a generator: pass stream=True to stream its items")
        encode_overridden = type(api).encode_response is not LitAPI.encode_response
        if opts.stream and encode_overridden and not is_generator_hook(api.encode_response):
            raise ValueError(f"stream=True needs {name}.encode_response to be a generator (use yield)")


def _bind_spec(api: LitAPI, opts: ApiOptions) -> ApiOptions:
    """A spec decides the API's route; it gets its own copy so two APIs never share one."""
    from litserve.specs.base import LitSpec

    if not isinstance(opts.spec, LitSpec):
        raise ValueError(f"spec must be a LitSpec such as OpenAISpec(), got {opts.spec!r}")
    spec = copy.copy(opts.spec)
    spec.setup(api)
    return dataclasses.replace(opts, spec=spec, api_path=spec.api_path)


def _check_json_serializable(model_metadata: Any) -> None:
    try:
        json.dumps(model_metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_metadata must be JSON-serializable: {exc}") from None


def _check_batch_timeout_within_timeout(options: List[ApiOptions], timeout: Optional[float]) -> None:
    for opts in options:
        if timeout is not None and opts.batch_timeout > timeout:
            raise ValueError(
                f"batch_timeout ({opts.batch_timeout} s) must not exceed timeout ({timeout} s): "
                "requests would time out while waiting for a batch"
            )


def _check_unique_paths(options: List[ApiOptions], server_paths: List[Tuple[str, str]]) -> None:
    """Every route needs a path of its own: ``server_paths`` are (path, the option that set it) pairs."""
    seen: Dict[str, str] = {}
    api_paths = [path for opts in options for path in (opts.spec.api_paths if opts.spec else [opts.api_path])]
    for path, owner in [*server_paths, *((path, "api_path") for path in api_paths)]:
        if path in seen:
            raise ValueError(f"{owner} {path!r} is used twice (also by {seen[path]})")
        seen[path] = owner
