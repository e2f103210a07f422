"""Stop sequences on streamed text: release text only once it cannot be the start of a stop sequence."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple


class StopSequenceFilter:
    """Finds stop strings across text deltas; anything after the stop string is never released, nor the stop
    string itself unless ``include_stop`` (vLLM's ``include_stop_str_in_output``). ``matched`` is the stop
    string found, once one is.

    Example:
        >>> stops = StopSequenceFilter(["\\n\\n"])
        >>> stops.push("Hello\\n")
        ('Hello', False)
        >>> stops.push("\\nWorld")
        ('', True)
    """

    def __init__(self, stop_sequences: Sequence[str], include_stop: bool = False) -> None:
        self._stops = [stop for stop in stop_sequences if stop]
        self._include_stop = include_stop
        self._pending = ""
        self.matched: Optional[str] = None

    def push(self, delta: str, check: bool = True) -> Tuple[str, bool]:
        """Add a delta; return (text safe to release, whether a stop sequence was found).

        With ``check`` false (before ``min_new_tokens``), stop strings are not acted upon.
        """
        self._pending += delta
        if not self._stops:
            released, self._pending = self._pending, ""
            return released, False
        if check:
            found = [(index, stop) for index, stop in ((self._pending.find(s), s) for s in self._stops) if index >= 0]
            if found:
                index, stop = min(found, key=lambda pair: pair[0])
                self.matched = stop
                end = index + len(stop) if self._include_stop else index
                released, self._pending = self._pending[:end], ""
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
