"""The engine's own CPU kernel (decode attention over the KV pools in place), built on first use.

torch has no CPU kernel that attends many sequences of different lengths over slots scattered in a pool:
every torch route either copies the slots first or makes one call per sequence. ``decode_attention.c`` does
it in one call per layer. It is compiled with the machine's C compiler (``cc``, or ``$CC``) for this CPU
(``-march=native``) into a cache directory (``$LITSERVE_CACHE_DIR``, else ``~/.cache/litserve``), once per
source and CPU, and loaded with ``ctypes``. Where no compiler is found, or it fails, the engine logs why and
uses its torch path (same results). ``LITSERVE_NATIVE_KERNELS=0`` turns the kernel off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Optional

import torch

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("decode_attention.c")
FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-pthread", "-shared", "-fPIC"]
ENABLE_ENV = "LITSERVE_NATIVE_KERNELS"

_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_tried = False

_I64, _PTR = ctypes.c_int64, ctypes.c_void_p


def enabled() -> bool:
    """False when ``LITSERVE_NATIVE_KERNELS`` is set to 0 / false / off."""
    return os.environ.get(ENABLE_ENV, "1").strip().lower() not in ("0", "false", "off", "no")


def _cache_dir() -> Path:
    root = os.environ.get("LITSERVE_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "litserve")
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = platform.processor()
    lines = [line for line in info.splitlines() if line.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(lines))) + platform.machine()


def _build(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compile beside the target, then rename: workers starting together never load a half-written file.
    handle, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(handle)
    try:
        command = [compiler, *FLAGS, "-o", partial, str(SOURCE), "-lm"]
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _load() -> Optional[ctypes.CDLL]:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        logger.info("no C compiler found: decode attention runs on torch's kernels")
        return None
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(FLAGS).encode() + _cpu_signature().encode()).hexdigest()
    target = _cache_dir() / f"decode_attention-{key[:16]}.so"
    if not target.exists():
        try:
            _build(compiler, target)
        except (OSError, subprocess.SubprocessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            logger.warning("could not compile the decode attention kernel (%s): using torch's kernels", detail)
            return None
    library = ctypes.CDLL(str(target))
    function = library.litserve_decode_attention_f32
    function.restype = ctypes.c_int
    # Pointers go as addresses (tensor.data_ptr()); in order: queries, their head and sequence strides; key
    # pool, value pool, pool slots; slot table, its row stride, table rows, lengths; sequences, heads, kv heads,
    # head dim; scale, window (0: none); out, its sequence and head strides; scratch, max length, threads.
    function.argtypes = [_PTR, _I64, _I64, _PTR, _PTR, _I64, _PTR, _I64, _PTR, _PTR, _I64, _I64, _I64, _I64]
    function.argtypes += [ctypes.c_float, _I64, _PTR, _I64, _I64, _PTR, _I64, ctypes.c_int]
    return library


def decode_attention_library() -> Optional[ctypes.CDLL]:
    """The compiled kernel, or None (turned off, no compiler, or the build failed); built once per process."""
    global _library, _tried
    if not enabled():
        return None
    with _lock:
        if not _tried:
            _tried = True
            _library = _load()
        return _library


class DecodeAttention:
    """Calls the kernel for one step's decodes; built once per step, called once per layer."""

    def __init__(
        self,
        library: ctypes.CDLL,
        slot_table: torch.Tensor,
        table_rows: torch.Tensor,
        lengths: torch.Tensor,
        longest: int,
        threads: int,
    ) -> None:
        self._function = library.litserve_decode_attention_f32
        self._slot_table = slot_table
        self._table_rows = table_rows
        self._lengths = lengths
        self._longest = longest
        self._threads = max(1, threads)
        self._scratch: Optional[torch.Tensor] = None
        self.sequences = int(lengths.numel())
        self._table_address = slot_table.data_ptr()
        self._rows_address = table_rows.data_ptr()
        self._lengths_address = lengths.data_ptr()

    def __call__(
        self,
        queries: torch.Tensor,
        key_pool: torch.Tensor,
        value_pool: torch.Tensor,
        scale: float,
        window: Optional[int],
        out: torch.Tensor,
    ) -> None:
        """Write into ``out[:sequences]`` (``[N, heads, D]``) the attention of ``queries[:, :sequences]``
        (``[heads, N, D]``) over each sequence's slots of ``key_pool``/``value_pool`` (``[kv_heads, slots, D]``)."""
        if queries.stride(2) != 1:
            queries = queries.contiguous()
        heads, _, dim = queries.shape
        kv_heads, pool_slots, _ = key_pool.shape
        group = heads // kv_heads
        if self._scratch is None or self._scratch.numel() < self._threads * group * self._longest:
            self._scratch = torch.empty(self._threads * group * self._longest, dtype=torch.float32)
        status = self._function(
            queries.data_ptr(), queries.stride(0), queries.stride(1),
            key_pool.data_ptr(), value_pool.data_ptr(), pool_slots,
            self._table_address, self._slot_table.stride(0), self._rows_address, self._lengths_address,
            self.sequences, heads, kv_heads, dim, scale, window or 0,
            out.data_ptr(), out.stride(0), out.stride(1),
            self._scratch.data_ptr(), self._longest, self._threads,
        )  # fmt: skip
        if status != 0:
            raise RuntimeError(f"decode attention kernel refused {heads} heads over {kv_heads} kv heads")


def usable_for(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether the kernel serves pools of this device and dtype (CPU, float32)."""
    return device.type == "cpu" and dtype == torch.float32
