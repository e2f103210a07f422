"""One forward pass over a step's flattened tokens, through the unmodified transformers model.

All tokens of a step (one per decoding sequence, a chunk per prefilling one) go through the model as a
single row of ``N`` tokens with their own positions. The model's attention modules call our attention
function (registered in transformers' ``AttentionInterface`` as ``"litserve_token"``), which writes each
token's keys and values into its KV pool slot and attends, per sequence, over that sequence's slots only:

- decodes (rows ``0 .. num_decodes-1``, sorted by length): on CPU in float32, all of them in one call of the
  engine's C kernel (``litserve.llm.native``), which reads every sequence's slots through the slot table.
  Elsewhere (GPUs, other dtypes, no C compiler) they read the pools in place where a sequence's slots
  form long runs (``DecodePlan``): each such run is a view of the pools, attended once for every sequence
  that has it (a cached prefix shared by several is read once for all of them), and the partial results
  are merged by their log-sum-exp. What is left (short runs, short sequences) is gathered, in groups of
  similar length padded to the longest, with one scaled-dot-product attention call per group: for short
  contexts one gather costs less than several small calls.
- prefill chunks: per sequence, causal attention over its earlier slots plus the chunk itself (on CPU: the
  earlier slots without a mask, in place when they are one run, and the chunk causally, merged by log-sum-exp).

The plan and index tensors are built once per step (``StepBatch``) and shared by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F  # noqa: N812

from litserve.llm.kv import KVPools
from litserve.llm.linears import prepare_cpu_linears
from litserve.llm.native import DecodeAttention

ATTENTION_NAME = "litserve_token"
STEP_KWARG = "litserve_step"


@dataclass
class PrefillSpan:
    """A chunk of one sequence's prompt: rows ``start:end`` of the step; ``context`` is None on a first chunk."""

    start: int
    end: int
    context_slots: Optional[torch.Tensor] = None  # all the sequence's slots, earlier chunks then this one
    earlier_run: Optional[int] = None  # pool slot of its first earlier token, when the earlier ones are one run

    def mask(self, device: torch.device, window: Optional[int]) -> torch.Tensor:
        """``[chunk, context]`` bool, True where a chunk token may attend (causal, within ``window``)."""
        chunk = self.end - self.start
        context = chunk if self.context_slots is None else self.context_slots.numel()
        query_positions = torch.arange(context - chunk, context, device=device).unsqueeze(1)
        key_positions = torch.arange(context, device=device).unsqueeze(0)
        allowed = key_positions <= query_positions
        if window is not None and window < context:
            allowed &= key_positions > query_positions - window
        return allowed


@dataclass
class DecodeGroup:
    """Decoding sequences in rows ``start:end``, gathered together; all have at most ``longest`` tokens."""

    start: int
    end: int
    longest: int
    kv_index: torch.Tensor  # [(end - start) * longest] slots, row after row, padding points at any slot
    kv_mask: torch.Tensor  # [end - start, 1, 1, longest] bool, False on padding
    lengths: torch.Tensor  # [end - start] tokens of each sequence, this step's included
    step_rows: Optional[List[int]] = None  # the step rows it covers, where not ``start:end``


# Decoding sequences gathered per group: smaller groups pad less, more groups cost more calls, which matter
# more on a GPU (a kernel launch each) than on a CPU (where padding is memory traffic).
DECODE_GROUP_SIZE = {"cpu": 16, "cuda": 64}


def decode_groups(
    slot_table: torch.Tensor, rows: List[int], lengths: List[int], group_size: int = 16
) -> List[DecodeGroup]:
    """Groups for decoding sequences in ``slot_table`` ``rows``, whose ``lengths`` are sorted ascending."""
    groups = []
    device = slot_table.device
    for start in range(0, len(rows), group_size):
        end = min(start + group_size, len(rows))
        longest = lengths[end - 1]
        table_rows = torch.tensor(rows[start:end], device=device)
        index = slot_table[table_rows, :longest].reshape(-1)
        group_lengths = torch.tensor(lengths[start:end], device=device)
        mask = torch.arange(longest, device=device).unsqueeze(0) < group_lengths.unsqueeze(1)
        groups.append(DecodeGroup(start, end, longest, index, mask[:, None, None, :], group_lengths))
    return groups


# A run of slots is read in place when it holds at least this many bytes of keys (and as many of values) for
# all the sequences that read it; shorter ones are gathered. Measured on CPU (decode steps interleaved, medians
# of 40): 48 sequences of ~110 tokens of the 256-wide model, 73-76 ms a step with runs of 64-128 slots in
# place, 84 ms from 32, 197 ms gathering everything; 8 of the 1024-wide model, 56 ms from 16 or 8 slots,
# 62 ms from 64, 136 ms gathering everything.
# (Measured on slot-major pools; with today's head-major ones 16, 32 and 64 KiB were level within the noise.)
IN_PLACE_MIN_BYTES = 64 * 1024


@dataclass
class RunJob:
    """One run of pool slots ``start:start+length``, attended in place by the decode rows ``rows``."""

    start: int
    length: int
    rows: torch.Tensor  # indices into ``DecodePlan.mixed``


@dataclass
class DecodePlan:
    """How this step's decodes attend: in-place runs for ``mixed`` rows, padded gather groups for the rest."""

    mixed: torch.Tensor  # step rows that have at least one in-place run
    jobs: List[RunJob] = field(default_factory=list)
    rest_index: Optional[torch.Tensor] = None  # [len(rest_rows) * rest_longest] slots of the mixed rows' rest
    rest_mask: Optional[torch.Tensor] = None  # [len(rest_rows), rest_longest] bool
    rest_rows: Optional[torch.Tensor] = None  # indices into ``mixed`` that have a gathered rest
    rest_longest: int = 0
    groups: List[DecodeGroup] = field(default_factory=list)  # the rows with no in-place run


def plan_decodes(
    slot_table: torch.Tensor,
    table_rows: List[int],
    lengths: List[int],
    runs: Sequence[Sequence[Sequence[int]]],
    min_run: int,
    group_size: int = 16,
) -> DecodePlan:
    """Plan the decodes whose slots are ``runs`` (per row, ``[start, length]`` in position order).

    A run is read in place when ``length * (rows sharing it) >= min_run``; the rows' other slots are gathered.
    """
    device = slot_table.device
    # Sequences that share a cached prefix have runs that start at the same slot and differ in length: cut
    # them where the shorter ones end, so the shared part is one run read once for all of them.
    by_start: Dict[int, List[Tuple[int, int]]] = {}
    for row, row_runs in enumerate(runs):
        for start, length in row_runs:
            by_start.setdefault(start, []).append((length, row))
    readers: Dict[Tuple[int, int], List[int]] = {}
    pieces: List[List[Tuple[int, int]]] = [[] for _ in runs]
    for start, entries in by_start.items():
        if len(entries) == 1:
            length, row = entries[0]
            readers[(start, length)] = [row]
            pieces[row].append((start, length))
            continue
        cuts = sorted({length for length, _ in entries})
        for length, row in entries:
            begin = 0
            for end in cuts:
                if end > length:
                    break
                readers.setdefault((start + begin, end - begin), []).append(row)
                pieces[row].append((start + begin, end - begin))
                begin = end
    in_place = {key: rows for key, rows in readers.items() if key[1] * len(rows) >= min_run}
    mixed_rows = sorted({row for rows in in_place.values() for row in rows})
    position = {row: index for index, row in enumerate(mixed_rows)}
    plain = [row for row in range(len(runs)) if row not in position]
    plan = DecodePlan(mixed=torch.tensor(mixed_rows, dtype=torch.long, device=device))
    for (start, length), rows in in_place.items():
        indices = torch.tensor([position[row] for row in rows], dtype=torch.long, device=device)
        plan.jobs.append(RunJob(start, length, indices))
    rests: List[Tuple[int, List[int]]] = []
    for index, row in enumerate(mixed_rows):
        slots: List[int] = []
        for start, length in pieces[row]:
            if (start, length) not in in_place:
                slots.extend(range(start, start + length))
        if slots:
            rests.append((index, slots))
    if rests:
        longest = max(len(slots) for _, slots in rests)
        padded = [slots + [slots[0]] * (longest - len(slots)) for _, slots in rests]
        plan.rest_index = torch.tensor(padded, dtype=torch.long, device=device).reshape(-1)
        counts = torch.tensor([len(slots) for _, slots in rests], device=device)
        plan.rest_mask = torch.arange(longest, device=device).unsqueeze(0) < counts.unsqueeze(1)
        plan.rest_rows = torch.tensor([index for index, _ in rests], dtype=torch.long, device=device)
        plan.rest_longest = longest
    if plain:
        for group in decode_groups(
            slot_table, [table_rows[row] for row in plain], [lengths[row] for row in plain], group_size
        ):
            group.step_rows = plain[group.start : group.end]
            plan.groups.append(group)
    return plan


def _attend_with_lse(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scale: float, mask: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention that also returns each query's log-sum-exp, so partial results can be merged.

    ``queries`` ``[..., q, D]``, ``keys``/``values`` ``[..., L, D]`` (strided views into the pools are fine),
    ``mask`` broadcastable to ``[..., q, L]``, True where allowed. Returns float32 ``[..., q, D]`` and
    ``[..., q]``. On CPU torch's flash kernel does it (it returns the log-sum-exp too; measured 1.3-1.5x
    faster than the matmuls below, which also copy strided keys).
    """
    if queries.device.type == "cpu" and _CPU_FLASH is not None:
        squeeze = queries.dim() == 3
        if squeeze:
            queries, keys, values = queries.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0)
        additive = None
        if mask is not None:
            additive = torch.zeros(mask.shape, dtype=queries.dtype, device=queries.device)
            additive.masked_fill_(~mask, float("-inf"))
        output, lse = _CPU_FLASH(queries, keys, values, 0.0, False, attn_mask=additive, scale=scale)[:2]
        if squeeze:
            output, lse = output[0], lse[0]
        return output.float(), lse
    scores = torch.matmul(queries, keys.transpose(-1, -2)).float() * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    peak = scores.amax(dim=-1, keepdim=True)
    weights = torch.exp(scores - peak)
    total = weights.sum(dim=-1, keepdim=True)
    output = torch.matmul(weights.to(values.dtype), values).float() / total
    return output, (peak + total.log()).squeeze(-1)


_CPU_FLASH = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _in_place_decodes(
    plan: DecodePlan,
    queries: torch.Tensor,
    key_pool: torch.Tensor,
    value_pool: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Attention output ``[len(plan.mixed), heads, head_dim]`` of the plan's mixed rows."""
    heads, _, head_dim = queries.shape
    kv_heads = key_pool.shape[0]
    per_kv = heads // kv_heads
    mixed_queries = queries.index_select(1, plan.mixed)  # [heads, M, head_dim]
    count = plan.mixed.numel()
    rows: List[torch.Tensor] = []
    outputs: List[torch.Tensor] = []
    lses: List[torch.Tensor] = []
    for job in plan.jobs:
        readers = job.rows.numel()
        grouped = mixed_queries.index_select(1, job.rows).view(kv_heads, per_kv, readers, head_dim)
        grouped = grouped.transpose(1, 2).reshape(kv_heads, readers * per_kv, head_dim)
        keys = key_pool[:, job.start : job.start + job.length]  # [kv_heads, L, head_dim], a view
        values = value_pool[:, job.start : job.start + job.length]
        output, lse = _attend_with_lse(grouped, keys, values, scale, None)
        outputs.append(
            output.view(kv_heads, readers, per_kv, head_dim).transpose(0, 1).reshape(readers, heads, head_dim)
        )
        lses.append(lse.view(kv_heads, readers, per_kv).transpose(0, 1).reshape(readers, heads))
        rows.append(job.rows)
    if plan.rest_rows is not None:
        readers, longest = plan.rest_rows.numel(), plan.rest_longest
        keys = _gather(key_pool, plan.rest_index, readers, longest)  # [R, kv_heads, L, D]
        values = _gather(value_pool, plan.rest_index, readers, longest)
        grouped = mixed_queries.index_select(1, plan.rest_rows).view(kv_heads, per_kv, readers, head_dim)
        grouped = grouped.permute(2, 0, 1, 3)  # [R, kv_heads, per_kv, D]
        output, lse = _attend_with_lse(grouped, keys, values, scale, plan.rest_mask[:, None, None, :])
        outputs.append(output.reshape(readers, heads, head_dim))
        lses.append(lse.reshape(readers, heads))
        rows.append(plan.rest_rows)
    if len(outputs) == 1:
        return outputs[0].to(queries.dtype)
    index = torch.cat(rows)
    output, lse = torch.cat(outputs), torch.cat(lses)  # [P, heads, D], [P, heads]
    if index.numel() == count:  # one part per row (each sequence a single run): nothing to merge
        return torch.empty_like(output).index_copy_(0, index, output).to(queries.dtype)
    peak = torch.full((count, heads), float("-inf"), device=lse.device)
    peak = peak.scatter_reduce(0, index.unsqueeze(1).expand(-1, heads), lse, reduce="amax")
    weights = torch.exp(lse - peak.index_select(0, index))
    total = torch.zeros((count, heads), device=lse.device).index_add_(0, index, weights)
    merged = torch.zeros((count, heads, head_dim), device=lse.device).index_add_(
        0, index, output * weights.unsqueeze(-1)
    )
    return (merged / total.unsqueeze(-1)).to(queries.dtype)


def _gather(pool: torch.Tensor, index: torch.Tensor, rows: int, longest: int) -> torch.Tensor:
    """``[rows, kv_heads, longest, head_dim]``: the pool's slots ``index`` (row after row), copied."""
    kv_heads, _, head_dim = pool.shape
    return pool.index_select(1, index).view(kv_heads, rows, longest, head_dim).transpose(0, 1)


@dataclass
class StepBatch:
    """The flattened tokens of one step and the indices the attention function needs."""

    input_ids: torch.Tensor  # [N]
    positions: torch.Tensor  # [N]
    slots: torch.Tensor  # [N] pool slot each token's keys and values go to
    logits_rows: torch.Tensor  # [S] rows whose next-token logits are wanted
    decode_plan: Optional[DecodePlan] = None  # the decodes, in place where it pays
    native_decodes: Optional[DecodeAttention] = None  # or all of them in one call of our CPU kernel
    prefills: List[PrefillSpan] = field(default_factory=list)
    pools: Optional[KVPools] = None
    # What a sliding window shorter than some decode's context needs: every decode gathered, then masked.
    slot_table: Optional[torch.Tensor] = None
    decode_table_rows: List[int] = field(default_factory=list)
    decode_lengths: List[int] = field(default_factory=list)  # ascending
    group_size: int = 16
    _gathered: Optional[List[DecodeGroup]] = None

    def gathered_groups(self) -> List[DecodeGroup]:
        """Every decode in padded gather groups (built on first use)."""
        if self._gathered is None:
            self._gathered = []
            if self.decode_table_rows:
                self._gathered = decode_groups(
                    self.slot_table, self.decode_table_rows, self.decode_lengths, self.group_size
                )
        return self._gathered


def token_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    scaling: Optional[float] = None,
    dropout: float = 0.0,
    **kwargs,
):
    """Attention over token-level KV pools; query/key/value are ``[1, heads, N, head_dim]``.

    ``sliding_window`` (Mistral, Qwen2) limits each query to the keys of its last ``sliding_window`` positions.
    """
    step: StepBatch = kwargs[STEP_KWARG]
    window = kwargs.get("sliding_window")
    layer = module.layer_idx
    key_pool, value_pool = step.pools.keys[layer], step.pools.values[layer]
    kv_heads, _, head_dim = key_pool.shape
    key_pool.index_copy_(1, step.slots, key[0])
    value_pool.index_copy_(1, step.slots, value[0])

    queries = query[0]  # [heads, N, head_dim]
    output = torch.empty_like(queries.transpose(0, 1))  # [N, heads, head_dim]
    gqa = queries.shape[0] != kv_heads
    plan = step.decode_plan
    decode_groups_now: List[DecodeGroup] = []
    if step.native_decodes is not None:
        scale = scaling if scaling is not None else head_dim**-0.5
        step.native_decodes(queries, key_pool, value_pool, scale, window, output)
    elif plan is not None and (window is None or not step.decode_lengths or window >= step.decode_lengths[-1]):
        scale = scaling if scaling is not None else head_dim**-0.5
        if plan.mixed.numel():
            mixed = _in_place_decodes(plan, queries, key_pool, value_pool, scale)
            output.index_copy_(0, plan.mixed, mixed)
        decode_groups_now = plan.groups
    else:
        decode_groups_now = step.gathered_groups()
    for group in decode_groups_now:
        keys = _gather(key_pool, group.kv_index, group.end - group.start, group.longest)  # [G, kv_heads, L, D]
        values = _gather(value_pool, group.kv_index, group.end - group.start, group.longest)
        if group.step_rows is None:
            group_queries = queries[:, group.start : group.end].transpose(0, 1).unsqueeze(2)  # [G, heads, 1, D]
        else:
            group_queries = queries[:, group.step_rows].transpose(0, 1).unsqueeze(2)
        mask = group.kv_mask
        if window is not None and window < group.longest:
            positions = torch.arange(group.longest, device=mask.device).unsqueeze(0)
            mask = mask & (positions >= (group.lengths - window).unsqueeze(1))[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            group_queries, keys, values, attn_mask=mask, scale=scaling, enable_gqa=gqa
        )
        if group.step_rows is None:
            output[group.start : group.end] = attended.squeeze(2)
        else:
            output[group.step_rows] = attended.squeeze(2)
    _attend_prefills(step, queries, key[0], value[0], key_pool, value_pool, scaling, window, output)
    return output.unsqueeze(0), None


def _attend_prefills(
    step: StepBatch,
    queries: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_pool: torch.Tensor,
    value_pool: torch.Tensor,
    scaling: Optional[float],
    window: Optional[int],
    output: torch.Tensor,
) -> None:
    """Write into ``output`` the attention of every prefill chunk of the step (``key``/``value``: ``[kv_heads,
    N, D]``, this step's)."""
    head_dim = key_pool.shape[2]
    gqa = queries.shape[0] != key_pool.shape[0]
    for span in step.prefills:
        chunk = span.end - span.start
        chunk_queries = queries[:, span.start : span.end]  # [heads, C, head_dim]
        keys, values = key[:, span.start : span.end], value[:, span.start : span.end]
        earlier = 0 if span.context_slots is None else span.context_slots.numel() - chunk
        fits_window = window is None or window >= earlier + chunk
        if earlier and fits_window and _CPU_FLASH is not None and queries.device.type == "cpu":
            scale = scaling if scaling is not None else head_dim**-0.5
            attended = _prefill_after_context(span, earlier, chunk_queries, keys, values, key_pool, value_pool, scale)
            output[span.start : span.end] = attended.transpose(0, 1)
            continue
        mask = None if fits_window and not earlier else span.mask(queries.device, window)
        if earlier:
            keys = key_pool.index_select(1, span.context_slots)  # [kv_heads, context, head_dim]
            values = value_pool.index_select(1, span.context_slots)
        attended = F.scaled_dot_product_attention(
            chunk_queries.unsqueeze(0),
            keys.unsqueeze(0),
            values.unsqueeze(0),
            attn_mask=mask,
            is_causal=mask is None,
            scale=scaling,
            enable_gqa=gqa,
        )
        output[span.start : span.end] = attended[0].transpose(0, 1)


def _prefill_after_context(
    span: PrefillSpan,
    earlier: int,
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    key_pool: torch.Tensor,
    value_pool: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """``[heads, C, D]``: a chunk's attention over its ``earlier`` tokens (all visible, read in place when they
    are one run of the pools) and, causally, over itself, merged by log-sum-exp. No mask is built."""
    heads, chunk, head_dim = queries.shape
    kv_heads = key_pool.shape[0]
    per_kv = heads // kv_heads
    if span.earlier_run is not None:
        earlier_keys = key_pool[:, span.earlier_run : span.earlier_run + earlier]
        earlier_values = value_pool[:, span.earlier_run : span.earlier_run + earlier]
    else:
        earlier_slots = span.context_slots[:earlier]
        earlier_keys, earlier_values = (
            key_pool.index_select(1, earlier_slots),
            value_pool.index_select(1, earlier_slots),
        )
    grouped = queries.reshape(kv_heads, per_kv * chunk, head_dim)  # a kv head's queries together: no copy of keys
    past, past_lse = _attend_with_lse(grouped, earlier_keys, earlier_values, scale, None)
    past, past_lse = past.reshape(heads, chunk, head_dim), past_lse.reshape(heads, chunk)
    if per_kv > 1:
        keys, values = keys.repeat_interleave(per_kv, 0), values.repeat_interleave(per_kv, 0)
    own, own_lse = _CPU_FLASH(queries.unsqueeze(0), keys.unsqueeze(0), values.unsqueeze(0), 0.0, True, scale=scale)[:2]
    own, own_lse = own[0].float(), own_lse[0]
    peak = torch.maximum(past_lse, own_lse)
    past_weight, own_weight = torch.exp(past_lse - peak).unsqueeze(-1), torch.exp(own_lse - peak).unsqueeze(-1)
    return ((past * past_weight + own * own_weight) / (past_weight + own_weight)).to(queries.dtype)


def register_attention() -> None:
    """Make ``attn_implementation="litserve_token"`` available to every transformers model."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, token_attention)


class ModelRunner:
    """Runs a causal LM's forward pass over a ``StepBatch`` and returns the wanted logits."""

    def __init__(self, model: torch.nn.Module, pools: KVPools) -> None:
        register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
        prepare_cpu_linears(model)
        self.model = model
        self.pools = pools
        self.body = model.base_model
        self.lm_head = model.get_output_embeddings()

    @torch.inference_mode()
    def forward(self, batch: StepBatch) -> torch.Tensor:
        """Feed the step's tokens; return float32 logits ``[S, vocab]`` for ``batch.logits_rows``."""
        batch.pools = self.pools
        hidden = self.body(
            input_ids=batch.input_ids.unsqueeze(0),
            position_ids=batch.positions.unsqueeze(0),
            use_cache=False,
            **{STEP_KWARG: batch},
        ).last_hidden_state[0]
        return self.lm_head(hidden[batch.logits_rows]).float()
