"""Per-request generation parameters, validated when built (``ValueError`` says which field is wrong)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from litserve.options import is_int, is_number

# Most top log-probabilities one token may report (vLLM's default max_logprobs, OpenAI's top_logprobs bound).
MAX_TOP_LOGPROBS = 20
STRUCTURED_KINDS = ("json", "regex", "choice", "grammar")


@dataclass(frozen=True)
class StructuredSpec:
    """A constraint on the output: ``kind`` is one of ``STRUCTURED_KINDS``; ``value`` the JSON schema (as
    JSON text), the regular expression, the JSON list of choices, or the grammar (Lark or GBNF/EBNF).
    ``whitespace_pattern`` (JSON only) allows whitespace matching it between tokens; by default the JSON is
    compact, with none."""

    kind: str
    value: str
    whitespace_pattern: Optional[str] = None


@dataclass
class SamplingParams:
    """How one request generates (LightLLM's ``parameters``; OpenAI routes map their fields onto these).

    Decoding is greedy unless ``do_sample`` is true and ``temperature`` is above 0. ``repetition_penalty``
    (Hugging Face semantics) applies to prompt and output tokens; ``frequency_penalty`` and
    ``presence_penalty`` (OpenAI semantics) to output tokens. ``stop_sequences`` end generation when the
    output text contains one; the stop text itself is not returned. ``seed`` makes sampling reproducible:
    the same seed gives the same tokens whatever else runs in the batch.

    ``logprobs`` (0 to 20) asks for that many most likely tokens, with their log-probabilities, beside each
    chosen one. ``stop_token_ids`` end generation like EOS; the stopping token (or stop string) is kept in
    the text only with ``include_stop_str_in_output``. ``skip_special_tokens`` leaves special tokens out of
    the text. ``structured`` constrains the output to a JSON schema, regex, choice or grammar.
    """

    max_new_tokens: int = 16
    min_new_tokens: int = 0
    temperature: float = 1.0
    do_sample: bool = False
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop_sequences: List[str] = field(default_factory=list)
    ignore_eos: bool = False
    seed: Optional[int] = None
    logprobs: Optional[int] = None
    stop_token_ids: List[int] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    structured: Optional[StructuredSpec] = None

    def __post_init__(self) -> None:
        if isinstance(self.stop_sequences, str):
            self.stop_sequences = [self.stop_sequences]
        problems = list(self._problems())
        if problems:
            raise ValueError("; ".join(problems))

    def _problems(self):
        if not is_int(self.max_new_tokens) or self.max_new_tokens < 1:
            yield f"max_new_tokens must be an integer >= 1, got {self.max_new_tokens!r}"
        if not is_int(self.min_new_tokens) or self.min_new_tokens < 0:
            yield f"min_new_tokens must be an integer >= 0, got {self.min_new_tokens!r}"
        elif is_int(self.max_new_tokens) and self.min_new_tokens > self.max_new_tokens:
            yield f"min_new_tokens ({self.min_new_tokens}) must not exceed max_new_tokens ({self.max_new_tokens})"
        if not is_number(self.temperature) or self.temperature < 0:
            yield f"temperature must be a number >= 0, got {self.temperature!r}"
        if not isinstance(self.do_sample, bool):
            yield f"do_sample must be true or false, got {self.do_sample!r}"
        if not is_number(self.top_p) or not 0 < self.top_p <= 1:
            yield f"top_p must be in (0, 1], got {self.top_p!r}"
        if not is_int(self.top_k) or (self.top_k != -1 and self.top_k < 1):
            yield f"top_k must be -1 (off) or an integer >= 1, got {self.top_k!r}"
        if not is_number(self.repetition_penalty) or self.repetition_penalty <= 0:
            yield f"repetition_penalty must be a number > 0, got {self.repetition_penalty!r}"
        for name in ("frequency_penalty", "presence_penalty"):
            value = getattr(self, name)
            if not is_number(value) or not -2 <= value <= 2:
                yield f"{name} must be a number in [-2, 2], got {value!r}"
        if not isinstance(self.stop_sequences, list) or not all(
            isinstance(stop, str) and stop for stop in self.stop_sequences
        ):
            yield f"stop_sequences must be a list of non-empty strings, got {self.stop_sequences!r}"
        if not isinstance(self.ignore_eos, bool):
            yield f"ignore_eos must be true or false, got {self.ignore_eos!r}"
        if self.seed is not None and (not is_int(self.seed) or not 0 <= self.seed < 2**63):
            yield f"seed must be a non-negative integer or null, got {self.seed!r}"
        if self.logprobs is not None and (not is_int(self.logprobs) or not 0 <= self.logprobs <= MAX_TOP_LOGPROBS):
            yield f"logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {self.logprobs!r}"
        if not isinstance(self.stop_token_ids, list) or not all(
            is_int(token) and token >= 0 for token in self.stop_token_ids
        ):
            yield f"stop_token_ids must be a list of token ids, got {self.stop_token_ids!r}"
        for name in ("include_stop_str_in_output", "skip_special_tokens"):
            if not isinstance(getattr(self, name), bool):
                yield f"{name} must be true or false, got {getattr(self, name)!r}"
        structured = self.structured
        if structured is not None and (
            not isinstance(structured, StructuredSpec) or structured.kind not in STRUCTURED_KINDS
        ):
            yield f"structured must be a StructuredSpec of kind {', '.join(STRUCTURED_KINDS)}, got {structured!r}"

    @property
    def greedy(self) -> bool:
        return not self.do_sample or self.temperature == 0

    @property
    def penalized(self) -> bool:
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0
