"""One process's metrics storage: a flat array of float64 slots, memory-mapped into the metrics directory.

Each process owns its own file and is its only writer, so recording is a plain slot increment (no lock, no
system call). A scrape adds up every process's file, slot by slot (``read_totals``). Before ``open`` (or
when metrics are off) the slots live in memory, and what was recorded there is carried into the file.
"""

from __future__ import annotations

import mmap
import os
from array import array
from bisect import bisect_left
from typing import List, Optional, Sequence, Tuple

SLOT_BYTES = 8  # one float64


def _in_memory(count: int) -> memoryview:
    return memoryview(bytearray(count * SLOT_BYTES)).cast("d")


class SlotFile:
    """``count`` float64 slots; ``values`` is what recording writes to."""

    def __init__(self, count: int) -> None:
        self.values = _in_memory(count)
        self._mapped: Optional[Tuple[mmap.mmap, memoryview]] = None

    @property
    def mapped(self) -> bool:
        return self._mapped is not None

    def grow(self, count: int) -> None:
        """Make room for ``count`` slots (before ``open`` only), keeping what was recorded."""
        if self._mapped is None and count > len(self.values):
            grown = _in_memory(count)
            grown[: len(self.values)] = self.values
            self.values = grown

    def open(self, path: str) -> None:
        """Back the slots by the file at ``path``; a restarted process continues its file."""
        size = len(self.values) * SLOT_BYTES
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            mapped = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        view = memoryview(mapped)
        values = view.cast("d")
        for i, value in enumerate(self.values):
            if value:
                values[i] += value
        self.values, self._mapped = values, (mapped, view)

    def close(self) -> None:
        """Unmap the file (it stays, as counters must); recording goes on into fresh in-memory slots."""
        if self._mapped is None:
            return
        mapped, view = self._mapped
        values, self._mapped = self.values, None
        self.values = _in_memory(len(values))
        values.release()
        view.release()
        mapped.close()


def read_totals(directory: str, count: int, suffix: str) -> List[float]:
    """The sum, slot by slot, of the first ``count`` slots of every ``*suffix`` file in ``directory``.

    Shorter files count as zeros past their end.
    """
    totals = [0.0] * count
    for name in os.listdir(directory):
        if not name.endswith(suffix):
            continue
        try:
            with open(os.path.join(directory, name), "rb") as file:
                data = file.read(count * SLOT_BYTES)
        except OSError:
            continue
        values = array("d")
        values.frombytes(data[: len(data) - len(data) % SLOT_BYTES])
        for i, value in enumerate(values):
            if value:
                totals[i] += value
    return totals


def observe(values: memoryview, start: int, bounds: Sequence[float], value: float) -> None:
    """Count ``value`` in a histogram stored from slot ``start``: a count per bound, +Inf, then the sum."""
    values[start + bisect_left(bounds, value)] += 1.0
    values[start + len(bounds) + 1] += value
