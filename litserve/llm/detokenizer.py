"""Incremental detokenization: text deltas per generated token that never split a UTF-8 character.

A byte-level tokenizer may spread one character over several tokens; decoding such a prefix yields the
replacement character U+FFFD. The delta is held back until the text decodes cleanly, then released whole.
Decoding starts from the last few prompt tokens so that tokenizers which drop a leading space at the start
of a text (SentencePiece) still give the first generated word its space.
"""

from __future__ import annotations

from typing import List, Sequence

REPLACEMENT_CHAR = "\ufffd"
PROMPT_CONTEXT_TOKENS = 5


class IncrementalDetokenizer:
    """Turns one request's generated token ids into text deltas.

    Example:
        >>> detok = IncrementalDetokenizer(tokenizer, prompt_ids)
        >>> deltas = [detok.push(token) for token in generated]  # "".join(deltas) + detok.flush() == full text
    """

    def __init__(self, tokenizer, prompt_ids: Sequence[int] = (), skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip_special = skip_special_tokens
        self._ids: List[int] = list(prompt_ids[-PROMPT_CONTEXT_TOKENS:])
        self._prefix_offset = 0  # start of the window decoded for context
        self._read_offset = len(self._ids)  # end of what has been emitted

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip_special)

    def push(self, token_id: int) -> str:
        """Add one token; return the new text it completes ("" while a character is still incomplete)."""
        self._ids.append(token_id)
        emitted = self._decode(self._ids[self._prefix_offset : self._read_offset])
        current = self._decode(self._ids[self._prefix_offset :])
        if len(current) <= len(emitted) or current.endswith(REPLACEMENT_CHAR):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return current[len(emitted) :]

    def flush(self) -> str:
        """Text still held back at the end of generation (an incomplete character decodes as U+FFFD)."""
        emitted = self._decode(self._ids[self._prefix_offset : self._read_offset])
        current = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return current[len(emitted) :] if current.startswith(emitted) else ""
