"""Stop sequences on streamed text: release text only once it cannot be the start of a stop sequence."""

from __future__ import annotations

from typing import Sequence, Tuple


class StopSequenceFilter:
    """Finds stop strings across text deltas; the stop string and anything after it is never released.

    Example:
        >>> stops = StopSequenceFilter(["\\n\\n"])
        >>> stops.push("Hello\\n")
        ('Hello', False)
        >>> stops.push("\\nWorld")
        ('', True)
    """

    def __init__(self, stop_sequences: Sequence[str]) -> None:
        self._stops = [stop for stop in stop_sequences if stop]
        self._pending = ""

    def push(self, delta: str, check: bool = True) -> Tuple[str, bool]:
        """Add a delta; return (text safe to release, whether a stop sequence was found).

        With ``check`` false (before ``min_new_tokens``), stop strings are not acted upon.
        """
        self._pending += delta
        if not self._stops:
            released, self._pending = self._pending, ""
            return released, False
        if check:
            found = [index for index in (self._pending.find(stop) for stop in self._stops) if index >= 0]
            if found:
                released, self._pending = self._pending[: min(found)], ""
                return released, True
        hold = self._longest_partial_stop_suffix()
        cut = len(self._pending) - hold
        released, self._pending = self._pending[:cut], self._pending[cut:]
        return released, False

    def flush(self) -> str:
        """Text held back because it might have begun a stop sequence."""
        released, self._pending = self._pending, ""
        return released

    def _longest_partial_stop_suffix(self) -> int:
        longest = 0
        for stop in self._stops:
            for size in range(min(len(stop) - 1, len(self._pending)), longest, -1):
                if self._pending.endswith(stop[:size]):
                    longest = size
                    break
        return longest
