"""Next-token choice for a batch of requests, each with its own parameters and random generator.

Greedy rows take the argmax; sampled rows are scaled by temperature, cut to top-k and top-p, and drawn with
one uniform number from the request's own ``torch.Generator`` (seeded from ``SamplingParams.seed``), so a
request's tokens depend only on its logits and its seed, never on its neighbours in the batch.

Rows with a grammar (structured outputs) get their disallowed tokens masked first, in one operation for all of
them; rows without one cost nothing more. Log-probabilities (the chosen token's, and the top ``logprobs``
when a request asks) are those of the model's own distribution: the log-softmax of the logits before
penalties, masks and temperature, as vLLM reports them by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch

from litserve.llm.sampling_params import SamplingParams

if TYPE_CHECKING:
    from litserve.llm.structured import GrammarConstraint

TopLogprobs = List[Tuple[int, float]]


@dataclass
class SampleRow:
    """One request's sampling inputs for this step."""

    params: SamplingParams
    generator: Optional[torch.Generator]  # CPU generator; None draws from the sampler's shared one
    prompt_ids: Sequence[int]
    output_ids: Sequence[int]
    suppress_ids: Sequence[int] = ()  # tokens that must not be chosen now (EOS before min_new_tokens)
    constraint: Optional[GrammarConstraint] = None  # the request's grammar, if it has one


class Sampler:
    """Chooses one token per row of a ``[rows, vocab]`` logits tensor."""

    def __init__(self, seed: Optional[int] = None) -> None:
        self._shared = torch.Generator()
        if seed is not None:
            self._shared.manual_seed(seed)
        else:
            self._shared.seed()

    def sample(
        self, logits: torch.Tensor, rows: List[SampleRow]
    ) -> Tuple[List[int], List[float], List[Optional[TopLogprobs]]]:
        """Return each row's token, its log-probability under the model's unmodified distribution, and (for
        rows whose params ask for ``logprobs``) the most likely tokens with theirs; None for the others."""
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        logits, sampled, wanting_top, constrained = self._adjust(logits, rows)
        chosen = logits.argmax(dim=-1)
        if sampled:
            chosen[sampled] = self._draw(logits[sampled], [rows[i] for i in sampled])
        if constrained:
            from litserve.llm.structured import check_chosen

            check_chosen(chosen, constrained, [rows[i].constraint for i in constrained])
        chosen_logprobs = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1)
        return chosen.tolist(), chosen_logprobs.tolist(), self._top_logprobs(logprobs, rows, wanting_top)

    def _adjust(
        self, logits: torch.Tensor, rows: List[SampleRow]
    ) -> Tuple[torch.Tensor, List[int], List[int], List[int]]:
        """Penalties, suppressed tokens and grammar masks; also which rows sample, which want top logprobs and
        which have a grammar (one pass over the rows)."""
        adjusted = None
        sampled: List[int] = []
        constrained: List[int] = []
        wanting_top: List[int] = []
        for i, row in enumerate(rows):
            params = row.params
            if not params.greedy:
                sampled.append(i)
            if params.logprobs:
                wanting_top.append(i)
            if row.constraint is not None:
                constrained.append(i)
            if not params.penalized and not row.suppress_ids:
                continue
            if adjusted is None:
                adjusted = logits.clone()
            _apply_penalties(adjusted[i], row)
            if row.suppress_ids:
                adjusted[i, list(row.suppress_ids)] = float("-inf")
        if constrained:
            from litserve.llm.structured import masked_logits

            source = logits if adjusted is None else adjusted
            adjusted = masked_logits(source, constrained, [rows[i].constraint for i in constrained])
        return (logits if adjusted is None else adjusted), sampled, wanting_top, constrained

    @staticmethod
    def _top_logprobs(logprobs: torch.Tensor, rows: List[SampleRow], wanting: List[int]) -> List[Optional[TopLogprobs]]:
        result: List[Optional[TopLogprobs]] = [None] * len(rows)
        if not wanting:
            return result
        top_k = max(rows[i].params.logprobs for i in wanting)
        values, ids = logprobs[wanting].topk(top_k, dim=-1)
        for position, (row_ids, row_values) in enumerate(zip(ids.tolist(), values.tolist())):
            i = wanting[position]
            k = rows[i].params.logprobs
            result[i] = list(zip(row_ids[:k], row_values[:k]))
        return result

    def _draw(self, logits: torch.Tensor, rows: List[SampleRow]) -> torch.Tensor:
        device = logits.device
        temperatures = torch.tensor([row.params.temperature for row in rows], device=device)
        scaled = logits.float() / temperatures.unsqueeze(1)
        sorted_logits, sorted_ids = scaled.sort(dim=-1, descending=True)
        vocab = sorted_logits.shape[-1]
        ranks = torch.arange(vocab, device=device).unsqueeze(0)
        top_k = torch.tensor([row.params.top_k if row.params.top_k > 0 else vocab for row in rows], device=device)
        sorted_logits = sorted_logits.masked_fill(ranks >= top_k.unsqueeze(1), float("-inf"))
        probs = torch.softmax(sorted_logits, dim=-1)
        top_p = torch.tensor([row.params.top_p for row in rows], device=device)
        mass_before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(mass_before >= top_p.unsqueeze(1), 0.0)  # the first token always stays
        cumulative = probs.cumsum(dim=-1)
        uniforms = torch.cat([torch.rand(1, generator=row.generator or self._shared) for row in rows]).to(device)
        targets = uniforms.to(cumulative.dtype) * cumulative[:, -1]
        picks = torch.searchsorted(cumulative, targets.unsqueeze(1), right=True).clamp_(max=vocab - 1)
        return sorted_ids.gather(1, picks).squeeze(1)


def _apply_penalties(row_logits: torch.Tensor, row: SampleRow) -> None:
    params = row.params
    device = row_logits.device
    if params.repetition_penalty != 1.0:
        seen = torch.tensor(list(set(row.prompt_ids) | set(row.output_ids)), dtype=torch.long, device=device)
        if seen.numel():
            scores = row_logits[seen]
            penalty = params.repetition_penalty
            row_logits[seen] = torch.where(scores < 0, scores * penalty, scores / penalty)
    if (params.frequency_penalty or params.presence_penalty) and len(row.output_ids):
        outputs = torch.tensor(row.output_ids, dtype=torch.long, device=device)
        counts = torch.bincount(outputs, minlength=row_logits.shape[0])[: row_logits.shape[0]].to(row_logits.dtype)
        row_logits -= params.frequency_penalty * counts + params.presence_penalty * (counts > 0).to(counts.dtype)
