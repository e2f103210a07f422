"""One forward pass over a step's flattened tokens, through the unmodified transformers model.

All tokens of a step (one per decoding sequence, a chunk per prefilling one) go through the model as a
single row of ``N`` tokens with their own positions. The model's attention modules call our attention
function (registered in transformers' ``AttentionInterface`` as ``"litserve_token"``), which writes each
token's keys and values into its KV pool slot and attends, per sequence, over that sequence's slots only:

- decodes (rows ``0 .. num_decodes-1``, sorted by length): in groups of similar length, one gather of the
  group's slots padded to its longest and masked, and one scaled-dot-product attention call per group;
- prefill chunks: per sequence, causal attention over its earlier slots plus the chunk itself.

The index tensors are built once per step (``StepBatch``) and shared by every layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F  # noqa: N812

from litserve.llm.kv import KVPools

ATTENTION_NAME = "litserve_token"
STEP_KWARG = "litserve_step"


@dataclass
class PrefillSpan:
    """A chunk of one sequence's prompt: rows ``start:end`` of the step; ``context`` is None on a first chunk."""

    start: int
    end: int
    context_slots: Optional[torch.Tensor] = None  # all the sequence's slots, earlier chunks then this one
    causal_mask: Optional[torch.Tensor] = None  # [chunk, context] bool, True where attention is allowed

    def mask(self, device: torch.device, window: Optional[int]) -> Optional[torch.Tensor]:
        """The chunk's attention mask, or None where plain causal attention over the chunk is right."""
        chunk = self.end - self.start
        context = chunk if self.context_slots is None else self.context_slots.numel()
        if window is None or window >= context:
            return self.causal_mask
        query_positions = torch.arange(context - chunk, context, device=device).unsqueeze(1)
        key_positions = torch.arange(context, device=device).unsqueeze(0)
        return (key_positions <= query_positions) & (key_positions > query_positions - window)


@dataclass
class DecodeGroup:
    """Decoding sequences in rows ``start:end``, gathered together; all have at most ``longest`` tokens."""

    start: int
    end: int
    longest: int
    kv_index: torch.Tensor  # [(end - start) * longest] slots, row after row, padding points at any slot
    kv_mask: torch.Tensor  # [end - start, 1, 1, longest] bool, False on padding
    lengths: torch.Tensor  # [end - start] tokens of each sequence, this step's included


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


@dataclass
class StepBatch:
    """The flattened tokens of one step and the indices the attention function needs."""

    input_ids: torch.Tensor  # [N]
    positions: torch.Tensor  # [N]
    slots: torch.Tensor  # [N] pool slot each token's keys and values go to
    logits_rows: torch.Tensor  # [S] rows whose next-token logits are wanted
    decode_groups: List[DecodeGroup] = field(default_factory=list)
    prefills: List[PrefillSpan] = field(default_factory=list)
    pools: Optional[KVPools] = None


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
    kv_heads, head_dim = key_pool.shape[1:]
    # Rows of the pools as flat 2-D views: index_select/index_copy_ over whole rows run about twice as fast as
    # over [slots, heads, head_dim] (measured on CPU).
    key_rows, value_rows = key_pool.view(key_pool.shape[0], -1), value_pool.view(value_pool.shape[0], -1)
    num_tokens = key.shape[2]
    key_rows.index_copy_(0, step.slots, key[0].transpose(0, 1).reshape(num_tokens, -1))
    value_rows.index_copy_(0, step.slots, value[0].transpose(0, 1).reshape(num_tokens, -1))

    queries = query[0]  # [heads, N, head_dim]
    output = torch.empty_like(queries.transpose(0, 1))  # [N, heads, head_dim]
    gqa = queries.shape[0] != kv_heads
    for group in step.decode_groups:
        shape = (group.end - group.start, group.longest, kv_heads, head_dim)
        keys = key_rows.index_select(0, group.kv_index).view(shape).transpose(1, 2)  # [G, kv_heads, L, head_dim]
        values = value_rows.index_select(0, group.kv_index).view(shape).transpose(1, 2)
        group_queries = queries[:, group.start : group.end].transpose(0, 1).unsqueeze(2)  # [G, heads, 1, head_dim]
        mask = group.kv_mask
        if window is not None and window < group.longest:
            positions = torch.arange(group.longest, device=mask.device).unsqueeze(0)
            mask = mask & (positions >= (group.lengths - window).unsqueeze(1))[:, None, None, :]
        attended = F.scaled_dot_product_attention(
            group_queries, keys, values, attn_mask=mask, scale=scaling, enable_gqa=gqa
        )
        output[group.start : group.end] = attended.squeeze(2)
    for span in step.prefills:
        chunk_queries = queries[:, span.start : span.end].unsqueeze(0)  # [1, heads, C, head_dim]
        if span.context_slots is None:
            keys = key[:, :, span.start : span.end]
            values = value[:, :, span.start : span.end]
        else:
            shape = (span.context_slots.numel(), kv_heads, head_dim)
            keys = key_rows.index_select(0, span.context_slots).view(shape).transpose(0, 1).unsqueeze(0)
            values = value_rows.index_select(0, span.context_slots).view(shape).transpose(0, 1).unsqueeze(0)
        mask = span.mask(queries.device, window)
        attended = F.scaled_dot_product_attention(
            chunk_queries, keys, values, attn_mask=mask, is_causal=mask is None, scale=scaling, enable_gqa=gqa
        )
        output[span.start : span.end] = attended[0].transpose(0, 1)
    return output.unsqueeze(0), None


def register_attention() -> None:
    """Make ``attn_implementation="litserve_token"`` available to every transformers model."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, token_attention)


class ModelRunner:
    """Runs a causal LM's forward pass over a ``StepBatch`` and returns the wanted logits."""

    def __init__(self, model: torch.nn.Module, pools: KVPools) -> None:
        register_attention()
        model.set_attn_implementation(ATTENTION_NAME)
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
