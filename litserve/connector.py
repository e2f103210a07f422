"""LitServe's ``litserve.connector``: how many GPUs this machine shows, and the accelerator a server picks."""

from __future__ import annotations

import functools
import os
import subprocess
from typing import List, Union

from litserve.devices import resolve_accelerator, resolve_devices


@functools.lru_cache(maxsize=1)
def check_cuda_with_nvidia_smi() -> int:
    """How many NVIDIA GPUs ``nvidia-smi -L`` lists that ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) lets this
    process use; 0 without ``nvidia-smi``. Computed once per process."""
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return len(gpus)
    wanted = [entry.strip() for entry in visible.split(",") if entry.strip()]
    indices = {line.split(":", 1)[0].split()[1] for line in gpus}
    return sum(1 for entry in wanted if entry in indices or any(f"UUID: {entry}" in line for line in gpus))


class _Connector:
    """The accelerator and devices a ``LitServer(accelerator=..., devices=...)`` resolves to."""

    def __init__(self, accelerator: str = "auto", devices: Union[List[int], int, str] = "auto") -> None:
        self._accelerator = resolve_accelerator(accelerator or "auto")
        self._devices = len(resolve_devices(self._accelerator, devices)) if devices == "auto" else devices

    @property
    def accelerator(self) -> str:
        return self._accelerator

    @property
    def devices(self) -> Union[List[int], int]:
        return self._devices
