"""Turning ``accelerator`` and ``devices`` into one device string per worker slot."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import Any, List


def _torch_if_cheap() -> Any:
    """torch if it is already imported or a GPU may exist; None when importing it cannot find one.

    Importing torch costs about a second, so a machine with no sign of a GPU is answered without it.
    """
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if importlib.util.find_spec("torch") is None:
        return None
    gpu_hints = (
        os.path.exists("/dev/nvidia0"),
        shutil.which("nvidia-smi") is not None,
        sys.platform == "darwin",
    )
    if not any(gpu_hints):
        return None
    import torch

    return torch


def cuda_device_count() -> int:
    torch = _torch_if_cheap()
    if torch is None:
        return 0
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def mps_available() -> bool:
    torch = _torch_if_cheap()
    if torch is None:
        return False
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_accelerator(accelerator: str) -> str:
    """``auto`` picks CUDA, then MPS, then CPU; ``gpu`` picks CUDA, then MPS. Fails clearly without one."""
    accelerator = accelerator.lower()
    if accelerator == "cpu":
        return "cpu"
    if accelerator == "auto":
        if cuda_device_count() > 0:
            return "cuda"
        return "mps" if mps_available() else "cpu"
    if accelerator == "cuda":
        if cuda_device_count() == 0:
            raise RuntimeError("accelerator='cuda' was requested but no CUDA GPU is available on this machine")
        return "cuda"
    if accelerator == "mps":
        if not mps_available():
            raise RuntimeError("accelerator='mps' was requested but MPS is not available on this machine")
        return "mps"
    # "gpu"
    if cuda_device_count() > 0:
        return "cuda"
    if mps_available():
        return "mps"
    raise RuntimeError("accelerator='gpu' was requested but no GPU (CUDA or MPS) is available on this machine")


def resolve_devices(accelerator: str, devices: Any) -> List[str]:
    """Device strings, one per device (before ``workers_per_device`` copies)."""
    if accelerator == "cuda":
        available = cuda_device_count()
        if devices == "auto":
            ids = list(range(available))
        elif isinstance(devices, int):
            ids = list(range(devices))
        else:
            ids = list(devices)
        missing = [i for i in ids if i >= available]
        if missing:
            raise RuntimeError(f"devices={devices!r} asks for CUDA device(s) {missing}, but only {available} exist")
        return [f"cuda:{i}" for i in ids]
    count = 1 if devices == "auto" else (devices if isinstance(devices, int) else len(devices))
    return [accelerator] * count
