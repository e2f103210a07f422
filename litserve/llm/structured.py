"""Structured outputs: a grammar per request (JSON schema, regex, choice, Lark or GBNF grammar), enforced with
llguidance as a token mask per constrained sequence per step.

- ``StructuredOutputs`` (one per engine) compiles a ``StructuredSpec`` once and caches the compiled matcher by
  spec; each request gets a cheap copy. A spec llguidance cannot compile raises ``ValueError`` naming the
  problem, before the request runs.
- ``GrammarConstraint`` (one per sequence) fills the sequence's row of the step's bitmask and consumes each
  chosen token. It also keeps the reply finishable within ``max_new_tokens``: it knows how many tokens its
  closing policy (EOS when allowed, forced tokens, then the tokens that close strings, arrays and objects
  soonest) needs from the current state. Near the end of the budget it checks each token the model picks,
  and replaces one that would leave too few tokens to finish (opening another array item, say) with the
  policy's; once the budget left is down to what the policy needs, the policy takes over. The invariant
  (what the policy needs fits in what is left) holds at every step, so even a model whose free text is noise
  ends with complete JSON, as long as ``max_new_tokens`` covers the shortest valid output.
- ``masked_logits`` applies the bitmasks of the constrained rows of a step in one vectorized operation; rows
  without a constraint are not touched.

JSON is compact by default (no whitespace between tokens), so small models never wander into endless blanks.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Set

import torch

from litserve.llm.sampling_params import StructuredSpec

logger = logging.getLogger(__name__)

COMPILED_CACHE_SIZE = 256  # compiled grammars kept, least recently used dropped first
# Far from the end (the budget left exceeds the need by more than VERIFY_MARGIN) the need is recomputed only
# as often as it could catch up, taking a token to add at most GROWTH_PER_TOKEN to it; within the margin,
# every token the model picks is checked. The policy takes over CLOSE_MARGIN tokens before it must.
GROWTH_PER_TOKEN = 4
VERIFY_MARGIN = 64
CLOSE_MARGIN = 8
# Bytes of the tokens that can open more structure (a key, an item, an array, an object, an escape): the
# ones checked near the end. Others grow the need by a token or two at most (a character begun), which
# CLOSE_MARGIN and a recount every few tokens cover.
_STRUCTURAL = b',[{"\\:'
RECOUNT_EVERY = 4
ROLLOUT_EXTRA = 64  # the rollout gives up this far past the budget left
_UNREACHABLE = 1 << 30
_WORST_RANK = 1 << 20


class Vocabulary:
    """Bytes of every token id (for logprobs' ``bytes`` and the closing policy), from llguidance's tokenizer."""

    def __init__(self, tokenizer: Any, vocab_size: int, eos_token_ids: Set[int]) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_token_ids = sorted(eos_token_ids)
        self._llg_tokenizer: Any = None
        self._llg_error: Optional[str] = None
        self._bytes: Optional[List[bytes]] = None
        self._closing_ranks: Optional[tuple] = None

    @property
    def llg_tokenizer(self) -> Any:
        """llguidance's view of the tokenizer; ``ValueError`` when it cannot have one (not a fast tokenizer)."""
        if self._llg_tokenizer is None and self._llg_error is None:
            try:
                import llguidance.hf

                self._llg_tokenizer = llguidance.hf.from_tokenizer(
                    self.tokenizer, n_vocab=self.vocab_size, eos_token=self.eos_token_ids or None
                )
            except ImportError:
                self._llg_error = "structured outputs need llguidance: pip install 'litserve[llm]'"
            except Exception as exc:  # slow tokenizers, unknown formats
                self._llg_error = f"structured outputs are not available for this tokenizer: {exc}"
        if self._llg_error is not None:
            raise ValueError(self._llg_error)
        return self._llg_tokenizer

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes a token stands for (a special token: its name's UTF-8)."""
        if self._bytes is None:
            self._bytes = self._all_bytes()
        if 0 <= token_id < len(self._bytes):
            return self._bytes[token_id]
        return b""

    def _all_bytes(self) -> List[bytes]:
        special = set(self.tokenizer.all_special_ids)
        names = self.tokenizer.convert_ids_to_tokens(list(range(min(self.vocab_size, len(self.tokenizer)))))
        try:
            llg = self.llg_tokenizer
        except ValueError:
            llg = None
        table = []
        for token_id in range(self.vocab_size):
            name = names[token_id] if token_id < len(names) else None
            if name is None:
                table.append(b"")
            elif token_id in special or llg is None:
                text = name if token_id in special else self.tokenizer.decode([token_id])
                table.append(text.encode("utf-8", errors="replace"))
            else:
                table.append(llg.decode_bytes([token_id]))
        return table

    def closing_rank(self, in_text: bool) -> torch.Tensor:
        """Per token, how well it closes what is open (lower is better): tokens made only of ``"``, ``]`` and
        ``}`` first (the more they close, the better), then separators, short values, and openers last.
        ``in_text`` (inside a string, where ``]`` and ``}`` are mere characters): a token that begins with the
        closing quote comes first."""
        if self._closing_ranks is None:
            data = [self.token_bytes(token_id) for token_id in range(self.vocab_size)]
            ranks = [_closing_rank(item) for item in data]
            text_ranks = [_text_closing_rank(item) for item in data]
            for token_id in self.tokenizer.all_special_ids:
                if 0 <= token_id < self.vocab_size:
                    ranks[token_id] = text_ranks[token_id] = _WORST_RANK
            probes = [token_id for token_id, item in enumerate(data) if len(item) == 1 and item in _TEXT_ONLY_LETTERS]
            structural = [any(byte in _STRUCTURAL for byte in item) for item in data]
            self._closing_ranks = (
                torch.tensor(ranks, dtype=torch.int32),
                torch.tensor(text_ranks, dtype=torch.int32),
                torch.tensor(probes, dtype=torch.long),
                structural,
            )
        return self._closing_ranks[1 if in_text else 0]

    def may_open(self, token_id: int) -> bool:
        """Whether a token's bytes could open more structure (checked near the end of the budget)."""
        self.closing_rank(False)
        table = self._closing_ranks[3]
        return table[token_id] if 0 <= token_id < len(table) else True

    def text_probes(self) -> torch.Tensor:
        """Single-letter tokens JSON never allows outside a string: one allowed means the output is in text."""
        self.closing_rank(False)
        return self._closing_ranks[2]


_CLOSERS = b"\"]})>'"
_OPENERS = b"[{(<"


# Letters that no JSON literal (true, false, null, exponents) uses.
_TEXT_ONLY_LETTERS = {bytes([c]) for c in b"bcdghjkmopqvwxyzBCDFGHIJKLMNOPQRSTUVWXYZ"}


def _text_closing_rank(data: bytes) -> int:
    """Inside a string, where ``]`` and ``}`` are mere characters: the closing quote first (with what it may
    close after it), then ``@`` and other punctuation (the literal parts of formats), digits, letters."""
    if not data:
        return _WORST_RANK
    if data.startswith(b'"') and all(byte in _CLOSERS for byte in data):
        return -1000 - len(data)
    first = data[:1]
    if first == b"@":
        group = 1
    elif first.isdigit():
        group = 3
    elif first.isalpha():
        group = 4
    elif first.isspace():
        group = 5
    elif first.isascii() and first not in _OPENERS and first not in _CLOSERS:
        group = 2
    else:
        group = 6
    return 100 * group + len(data)


def _closing_rank(data: bytes) -> int:
    """Lower is better: pure closers (the more they close the better), separators, other punctuation (the
    literal parts of most patterns), digits, letters, whitespace, openers."""
    if not data:
        return _WORST_RANK
    if all(byte in _CLOSERS for byte in data):
        quotes = data.count(b'"') + data.count(b"'")
        return -(2 * (len(data) - quotes) + quotes)
    first = data[:1]
    if first in (b",", b":", b";"):
        group = 1
    elif first.isdigit():
        group = 3
    elif first.isalpha():
        group = 4
    elif first.isspace():
        group = 5
    elif first in _OPENERS:
        group = 6
    elif first.isascii():
        group = 2
    else:
        group = 7
    return 100 * group + len(data)


class StructuredOutputs:
    """Compiles ``StructuredSpec``s for one tokenizer and caches them by spec."""

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self._compiled: OrderedDict = OrderedDict()
        self._executor: Any = None

    def constraint(self, spec: StructuredSpec, max_new_tokens: int) -> GrammarConstraint:
        """A fresh constraint for one sequence; ``ValueError`` if the spec does not compile."""
        template = self.compiled(spec)
        return GrammarConstraint(template.deep_copy(), self.vocabulary, max_new_tokens)

    def compiled(self, spec: StructuredSpec) -> Any:
        template = self._compiled.get(spec)
        if template is not None:
            self._compiled.move_to_end(spec)
            return template
        import llguidance

        tokenizer = self.vocabulary.llg_tokenizer
        grammar = _grammar(spec)
        is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, tokenizer)
        if is_error:
            raise ValueError(f"the {_describe(spec.kind)} cannot be used: {'; '.join(messages)}")
        template = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if template.is_error():
            raise ValueError(f"the {_describe(spec.kind)} cannot be used: {template.get_error()}")
        self._compiled[spec] = template
        if len(self._compiled) > COMPILED_CACHE_SIZE:
            self._compiled.popitem(last=False)
        return template

    @property
    def cached(self) -> int:
        return len(self._compiled)


def _describe(kind: str) -> str:
    return {"json": "JSON schema", "regex": "regex", "choice": "choice list", "grammar": "grammar"}[kind]


def _grammar(spec: StructuredSpec) -> str:
    import llguidance

    if spec.kind == "json":
        options: dict = {"whitespace_flexible": False}
        if spec.whitespace_pattern is not None:
            options = {"whitespace_pattern": spec.whitespace_pattern}
        try:
            return llguidance.LLMatcher.grammar_from_json_schema(spec.value, defaults=options)
        except ValueError as exc:
            raise ValueError(f"the JSON schema cannot be used: {exc}") from None
    if spec.kind == "grammar":
        try:
            return llguidance.grammar_from("grammar", spec.value)
        except ValueError as exc:
            raise ValueError(f"the grammar cannot be used: {exc}") from None
    return llguidance.grammar_from(spec.kind, spec.value)


class GrammarConstraint:
    """One sequence's grammar state: fills its mask row each step, consumes the chosen token."""

    def __init__(self, matcher: Any, vocabulary: Vocabulary, max_new_tokens: int) -> None:
        self.matcher = matcher
        self.vocabulary = vocabulary
        self.remaining = max_new_tokens
        self.closing = False  # the closing policy has taken over
        self.verifying = False  # near the end: each token the model picks is checked
        self._next_check = 0  # in tokens consumed from now; 0: check at this step
        self._words = (vocabulary.vocab_size + 31) // 32

    @property
    def finished(self) -> bool:
        """Nothing but the end may follow: the output is complete."""
        return self.matcher.is_stopped()

    def accept(self, token_id: int) -> bool:
        """Consume the token the sampler chose; False if the grammar rejects it (it never should)."""
        self.remaining -= 1
        self._next_check -= 1
        return self.matcher.consume_token(token_id)

    def forced_token(self) -> Optional[int]:
        """The token the closing policy picks now, if the budget left says it must take over; else None."""
        if not self.closing and self._next_check <= 0:
            need = self.closing_length(self.matcher, limit=self.remaining + ROLLOUT_EXTRA)
            slack = self.remaining - need
            if slack <= CLOSE_MARGIN:
                self.closing = True
            elif slack <= VERIFY_MARGIN:
                self.verifying = True
                self._next_check = RECOUNT_EVERY
            else:
                self._next_check = max(1, (slack - VERIFY_MARGIN) // (GROWTH_PER_TOKEN + 1))
        if self.closing:
            return self.closing_token(self.matcher)
        return None

    def checked(self, token_id: int) -> Optional[int]:
        """The model picked ``token_id``; near the end, the policy's token instead if after the model's too
        few tokens would be left to finish. None: keep the model's."""
        if self.closing or not self.verifying or not self.vocabulary.may_open(token_id):
            return None
        after = self.matcher.deep_copy()
        budget = self.remaining - 1
        if (
            after.consume_token(token_id)
            and self.closing_length(after, limit=budget + ROLLOUT_EXTRA) <= budget - CLOSE_MARGIN
        ):
            return None
        self.closing = True
        return self.closing_token(self.matcher)

    def closing_length(self, matcher: Any, limit: int) -> int:
        """Tokens the closing policy needs from ``matcher``'s state to a complete output (``_UNREACHABLE``
        past ``limit``); ``matcher`` is left as it was."""
        matcher = matcher.deep_copy()
        eos = set(self.vocabulary.eos_token_ids)
        for steps in range(limit + 1):
            if matcher.is_stopped():
                return steps
            token = self.closing_token(matcher)
            if token is None:
                return _UNREACHABLE
            if token in eos:
                return steps + 1
            if not matcher.consume_token(token):
                return _UNREACHABLE
        return _UNREACHABLE

    def closing_token(self, matcher: Any) -> Optional[int]:
        """The policy's token for ``matcher``'s state: EOS if allowed, a forced token, else the best closer."""
        allowed = self.allowed(matcher)
        for token_id in self.vocabulary.eos_token_ids:
            if token_id < allowed.shape[0] and allowed[token_id]:
                return token_id
        forced = matcher.compute_ff_tokens()
        if forced:
            return forced[0]
        probes = self.vocabulary.text_probes()
        in_text = bool(allowed[probes].any()) if probes.numel() else int(allowed.sum()) * 4 > allowed.shape[0]
        ranks = self.vocabulary.closing_rank(in_text).masked_fill(~allowed, _UNREACHABLE)
        best = int(ranks.argmin())
        return best if allowed[best] else None

    def allowed(self, matcher: Any) -> torch.Tensor:
        bitmask = torch.empty((1, self._words), dtype=torch.int32)
        matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * 4)
        return unpack_bitmask(bitmask, self.vocabulary.vocab_size)[0]

    def fill(self, bitmask: torch.Tensor, row: int) -> None:
        """Write this step's allowed tokens into ``bitmask[row]`` (a contiguous CPU int32 tensor)."""
        forced = self.forced_token()
        target = bitmask[row]
        if forced is not None:
            target.zero_()
            target[forced // 32] = _bit(forced % 32)
            return
        self.matcher.unsafe_compute_mask_ptr(target.data_ptr(), target.numel() * 4)


def _bit(index: int) -> int:
    value = 1 << index
    return value - (1 << 32) if value >= 1 << 31 else value  # as a signed int32


_BIT_POSITIONS = torch.arange(32, dtype=torch.int32)


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[rows, words]`` int32 bitmask -> ``[rows, vocab_size]`` bool, True where a token is allowed."""
    bits = (bitmask.unsqueeze(-1) >> _BIT_POSITIONS) & 1
    return bits.reshape(bitmask.shape[0], -1)[:, :vocab_size].bool()


def check_chosen(chosen: torch.Tensor, rows: Sequence[int], constraints: Sequence[GrammarConstraint]) -> None:
    """Let each constrained row's constraint replace its chosen token (in place) where it must."""
    picks = chosen[list(rows)].tolist()
    for row, constraint, token_id in zip(rows, constraints, picks):
        replacement = constraint.checked(token_id)
        if replacement is not None:
            chosen[row] = replacement


def masked_logits(logits: torch.Tensor, rows: Sequence[int], constraints: Sequence[GrammarConstraint]) -> torch.Tensor:
    """``logits`` with every disallowed token of the constrained ``rows`` at -inf (a new tensor)."""
    vocab = logits.shape[-1]
    bitmask = torch.empty((len(rows), (vocab + 31) // 32), dtype=torch.int32)
    for index, constraint in enumerate(constraints):
        constraint.fill(bitmask, index)
    allowed = unpack_bitmask(bitmask, vocab).to(logits.device)
    masked = logits.clone()
    index = torch.tensor(list(rows), device=logits.device)
    masked[index] = logits[index].masked_fill(~allowed, float("-inf"))
    return masked


def canonical_json(value: Any) -> str:
    """One text per JSON value, so equal schemas share a cache entry."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
