"""``LLMEngine``: continuous batching of a Hugging Face causal LM over token-level KV pools.

The engine is driven from outside, one ``step()`` at a time, in one process and without threads of its own:

    engine = LLMEngine("/path/to/model")
    engine.add_request("a", engine.encode_prompt("Hello"), SamplingParams(max_new_tokens=8))
    while engine.has_unfinished():
        for event in engine.step():
            print(event.uid, repr(event.text), event.finish_reason)

Each step the scheduler picks the tokens to run (one per decoding request, prompt chunks within the prefill
budget, admissions that fit the KV capacity), the runner feeds them through the model in one forward pass,
the sampler chooses every request's next token, and finished requests give their KV slots back at once
(with prefix caching on, their tokens stay in the prefix tree for later requests until the space is needed).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import torch

from litserve.llm.detokenizer import IncrementalDetokenizer
from litserve.llm.kv import KVManager, KVPools
from litserve.llm.native import DecodeAttention, decode_attention_library, usable_for
from litserve.llm.quiet import no_progress_bars
from litserve.llm.runner import DECODE_GROUP_SIZE, IN_PLACE_MIN_BYTES, ModelRunner, PrefillSpan, StepBatch, plan_decodes
from litserve.llm.sampler import Sampler, SampleRow
from litserve.llm.sampling_params import SamplingParams
from litserve.llm.scheduler import PREFILL_CHUNK_TOKENS, Scheduler, SequenceState
from litserve.llm.stopping import StopSequenceFilter
from litserve.llm.structured import GrammarConstraint, StructuredOutputs, Vocabulary
from litserve.llm.threads import StepThreads

__all__ = ["EngineStats", "LLMEngine", "RequestTooLargeError", "SamplingParams", "TokenEvent"]

logger = logging.getLogger(__name__)

# On CPU the pools are plain RAM: 16384 token slots (about 128 MiB for a 4-layer, 256-wide float32 model),
# or fewer if that would take more than 2 GiB.
DEFAULT_CPU_KV_TOKENS = 16384
DEFAULT_CPU_KV_BYTES = 2 * 1024**3
# On a GPU the pools take this share of the memory left free after loading the model, less a reserve
# for activations.
GPU_KV_MEMORY_FRACTION = 0.85
GPU_ACTIVATION_RESERVE_BYTES = 1024**3


class RequestTooLargeError(ValueError):
    """A request can never run: its prompt plus ``max_new_tokens`` exceed what the engine can hold."""


@dataclass
class TokenEvent:
    """One generated token of one request, as ``LLMEngine.step()`` reports it."""

    uid: Any
    token_id: int
    text: str  # new text this token completes; "" while a character is incomplete or a stop may be starting
    logprob: float
    special: bool
    finished: bool
    finish_reason: Optional[str]  # "stop" | "length" | None
    prompt_tokens: int
    output_tokens: int
    cached_tokens: int = 0  # prompt tokens found in the prefix cache (not computed again)
    top_logprobs: Optional[List[Tuple[int, float]]] = None  # (token id, logprob), when params.logprobs asks
    stop_reason: Union[str, int, None] = None  # the stop string or stop token id that ended it (EOS: None)


@dataclass
class EngineStats:
    kv_tokens_used: int  # slots in use: live tokens of running requests plus the prefix cache
    kv_tokens_capacity: int
    running: int
    waiting: int
    kv_tokens_cached: int = 0  # slots held by the prefix cache (evictable unless a running request uses them)
    prefix_cache_queries: int = 0  # prompt tokens of admitted requests looked up in the prefix cache, in all
    prefix_cache_hits: int = 0  # of those, found there
    kv_tokens_evictable: int = 0  # cached slots no running request uses (evicted first when space is needed)


@dataclass(eq=False)
class _Sequence(SequenceState):
    params: SamplingParams = field(default_factory=SamplingParams)
    output_ids: List[int] = field(default_factory=list)
    generator: Optional[torch.Generator] = None
    detokenizer: Optional[IncrementalDetokenizer] = None
    stops: Optional[StopSequenceFilter] = None
    constraint: Optional[GrammarConstraint] = None


class LLMEngine:
    """Continuous-batching generation for a causal LM directory (config, safetensors weights, tokenizer).

    Args:
        model_dir: a local Hugging Face model directory (LLaMA, Mistral, Qwen2 or GPT-2 architectures).
        device: "cpu" or "cuda:N".
        max_total_token_num: KV capacity in tokens, shared by all requests. Default: on a GPU, what fits in
            85% of the memory left free after loading the model, less 1 GiB for activations; on CPU 16384
            tokens (or what fits in 2 GiB if less).
        max_running_requests: most requests decoding at once.
        prefill_chunk_tokens: most prompt tokens fed per step, so long prompts never stall decodes.
        dtype: "float32", "bfloat16" or "float16"; default float32 on CPU, bfloat16 (or float16) on GPU.
        enable_prefix_caching: reuse the KV slots of the longest cached prefix of each prompt (on by default;
            greedy output is the same either way).
    """

    def __init__(
        self,
        model_dir: str,
        device: str = "cpu",
        max_total_token_num: Optional[int] = None,
        max_running_requests: int = 64,
        prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS,
        dtype: Optional[str] = None,
        enable_prefix_caching: bool = True,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = torch.device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        self.model_name = os.path.basename(os.path.normpath(model_dir))
        with no_progress_bars():
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=self.dtype)
        model.to(self.device).eval()
        config = model.config
        num_layers = config.num_hidden_layers
        num_heads = config.num_attention_heads
        num_kv_heads = getattr(config, "num_key_value_heads", None) or num_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // num_heads
        self.max_position_embeddings = getattr(config, "max_position_embeddings", None) or config.n_positions

        per_token = KVPools.bytes_per_token(num_layers, num_kv_heads, head_dim, self.dtype)
        capacity = max_total_token_num or _default_capacity(self.device, per_token)
        if capacity < 2:
            raise ValueError(f"max_total_token_num must be at least 2, got {capacity}")
        self.capacity = capacity
        max_sequence = min(capacity, self.max_position_embeddings)
        self.kv = KVManager(capacity, max_running_requests, max_sequence, enable_prefix_caching, self.device)
        self.pools = KVPools(num_layers, capacity, num_kv_heads, head_dim, self.dtype, self.device)
        self.scheduler = Scheduler(self.kv, max_running_requests, prefill_chunk_tokens)
        row_bytes = num_kv_heads * head_dim * torch.empty((), dtype=self.dtype).element_size()
        self._min_run = max(1, IN_PLACE_MIN_BYTES // row_bytes)
        self._native = decode_attention_library() if usable_for(self.device, self.dtype) else None
        # On CPU a step may borrow every core (litserve.llm.threads); GPU steps keep torch's threads as they are.
        every_core = None if self.device.type == "cpu" else torch.get_num_threads()
        self._threads = StepThreads(_bytes_read_per_step(model), 2 * row_bytes, every_core=every_core)
        self.runner = ModelRunner(model, self.pools)
        self.sampler = Sampler()
        self.eos_token_ids: Set[int] = _eos_ids(model, self.tokenizer)
        self.special_token_ids: Set[int] = set(self.tokenizer.all_special_ids)
        self.vocab_size = int(getattr(config, "vocab_size", None) or len(self.tokenizer))
        self.vocabulary = Vocabulary(self.tokenizer, self.vocab_size, self.eos_token_ids)
        self.structured = StructuredOutputs(self.vocabulary)

        self._sequences: Dict[Any, _Sequence] = {}
        logger.info(
            "LLM engine: %s on %s (%s), KV capacity %d tokens (%.1f MiB), prefix caching %s",
            self.model_name,
            self.device,
            self.dtype,
            capacity,
            capacity * per_token / 2**20,
            "on" if enable_prefix_caching else "off",
        )

    # ----- requests -------------------------------------------------------------------------------------

    def encode_prompt(self, text: str) -> List[int]:
        """Token ids of a plain-text prompt (with the tokenizer's usual special tokens, e.g. BOS)."""
        return list(self.tokenizer.encode(text))

    @property
    def max_model_len(self) -> int:
        """Most tokens (prompt + output) one request may have here: the context length, or the KV capacity."""
        return min(self.capacity, self.max_position_embeddings)

    def encode_chat(
        self,
        messages: List[Dict[str, Any]],
        tools: Optional[List[Dict[str, Any]]] = None,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> List[int]:
        """Token ids of a conversation through the tokenizer's chat template (``tools`` passed to it), the
        assistant turn opened. ``ValueError`` if the template fails on these messages."""
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=False, **template_kwargs
            )
        except Exception as exc:  # jinja's TemplateError and whatever a template raises for what it refuses
            raise ValueError(f"the chat template failed on these messages: {exc}") from None
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def check(self, prompt_ids: List[int], params: SamplingParams) -> None:
        """Raise ``ValueError`` (``RequestTooLargeError`` for size) if this request could never run."""
        if not prompt_ids:
            raise ValueError("the prompt is empty: at least one token is needed")
        total = len(prompt_ids) + params.max_new_tokens
        if not self.scheduler.can_ever_fit(len(prompt_ids), params.max_new_tokens):
            raise RequestTooLargeError(
                f"prompt of {len(prompt_ids)} tokens + max_new_tokens {params.max_new_tokens} = {total} tokens "
                f"exceeds the KV capacity of {self.capacity} tokens (max_total_token_num)"
            )
        if total > self.max_position_embeddings:
            raise RequestTooLargeError(
                f"prompt of {len(prompt_ids)} tokens + max_new_tokens {params.max_new_tokens} = {total} tokens "
                f"exceeds the model's context length of {self.max_position_embeddings} tokens"
            )

    def add_request(self, uid: Any, prompt_ids: List[int], params: SamplingParams) -> None:
        """Queue a request (FIFO); the scheduler admits it when it fits. Raises like ``check``."""
        if uid in self._sequences:
            raise ValueError(f"request {uid!r} is already in the engine")
        prompt_ids = [int(token) for token in prompt_ids]
        self.check(prompt_ids, params)
        generator = None
        if params.seed is not None:
            generator = torch.Generator().manual_seed(params.seed)
        constraint = None
        if params.structured is not None:
            constraint = self.structured.constraint(params.structured, params.max_new_tokens)
        sequence = _Sequence(
            uid=uid,
            prompt_len=len(prompt_ids),
            max_new_tokens=params.max_new_tokens,
            prompt_ids=prompt_ids,
            params=params,
            generator=generator,
            detokenizer=IncrementalDetokenizer(self.tokenizer, prompt_ids, params.skip_special_tokens),
            stops=StopSequenceFilter(params.stop_sequences, params.include_stop_str_in_output),
            constraint=constraint,
        )
        self._sequences[uid] = sequence
        self.scheduler.add(sequence)

    def cancel(self, uid: Any) -> None:
        """Drop a request at once and free its KV slots; unknown or finished uids are ignored."""
        sequence = self._sequences.get(uid)
        if sequence is not None:
            self._release(sequence)

    def has_unfinished(self) -> bool:
        return self.scheduler.has_unfinished()

    def stats(self) -> EngineStats:
        kv = self.kv
        return EngineStats(
            kv_tokens_used=kv.used,
            kv_tokens_capacity=self.capacity,
            running=len(self.scheduler.running),
            waiting=len(self.scheduler.waiting),
            kv_tokens_cached=kv.cached,
            prefix_cache_queries=kv.prompt_tokens_queried,
            prefix_cache_hits=kv.prompt_tokens_found,
            kv_tokens_evictable=kv.evictable,
        )

    # ----- one step -------------------------------------------------------------------------------------

    def step(self) -> List[TokenEvent]:
        """Run one forward pass over every running request; return the tokens it produced."""
        plan = self.scheduler.schedule()
        if not plan:
            return []
        plan.decodes.sort(key=lambda sequence: sequence.num_computed)  # similar lengths share a gather
        threads, attention_threads = self._threads.choose(
            prompt_tokens=sum(count for _, count in plan.prefills),
            streamed_tokens=len(plan.decodes) + len(plan.prefills),
            context_tokens=sum(sequence.num_computed + 1 for sequence in plan.decodes),
        )
        batch, samplers = self._build_batch(plan.decodes, plan.prefills, attention_threads)
        with self._threads.running(threads):
            logits = self.runner.forward(batch)
        for sequence, _ in plan.prefills:  # computed prompt tokens are reusable from the next step on
            self.kv.cache_prompt(sequence.uid, sequence.prompt_ids, sequence.num_computed)
        rows = [
            SampleRow(
                params=sequence.params,
                generator=sequence.generator,
                prompt_ids=sequence.prompt_ids,
                output_ids=sequence.output_ids,
                suppress_ids=self._suppressed(sequence),
                constraint=sequence.constraint,
            )
            for sequence in samplers
        ]
        tokens, logprobs, tops = self.sampler.sample(logits, rows)
        return [self._emit(*emitted) for emitted in zip(samplers, tokens, logprobs, tops)]

    def _build_batch(self, decodes: List[_Sequence], prefills, attention_threads: int) -> tuple:
        kv = self.kv
        slots = kv.allocate([(sequence.uid, 1) for sequence in decodes] + [(s.uid, count) for s, count in prefills])
        input_ids: List[int] = [sequence.output_ids[-1] for sequence in decodes]
        positions: List[int] = [sequence.num_computed for sequence in decodes]
        samplers: List[_Sequence] = list(decodes)
        logits_rows: List[int] = list(range(len(decodes)))
        device = self.device
        table_rows = [kv.row(sequence.uid) for sequence in decodes]
        for sequence in decodes:
            sequence.num_computed += 1
        lengths = [sequence.num_computed for sequence in decodes]
        group_size = DECODE_GROUP_SIZE.get(device.type, 16)
        decode_plan = native_decodes = None
        if decodes and self._native is not None:
            native_decodes = DecodeAttention(
                self._native,
                kv.slot_table,
                torch.tensor(table_rows, dtype=torch.long),
                torch.tensor(lengths, dtype=torch.long),
                lengths[-1],
                attention_threads,
            )
        elif decodes:
            runs = [kv.runs(sequence.uid) for sequence in decodes]
            decode_plan = plan_decodes(kv.slot_table, table_rows, lengths, runs, self._min_run, group_size)
        spans: List[PrefillSpan] = []
        offset = len(decodes)
        for sequence, count in prefills:
            start = sequence.num_computed
            end = start + count
            row = kv.row(sequence.uid)
            input_ids.extend(sequence.prompt_ids[start:end])
            positions.extend(range(start, end))
            span = PrefillSpan(offset, offset + count)
            if start > 0:
                span.context_slots = kv.slot_table[row, :end]
                first_run = kv.runs(sequence.uid)[0]
                if first_run[1] >= start:
                    span.earlier_run = first_run[0]
            spans.append(span)
            sequence.num_computed = end
            offset += count
            if end == sequence.prompt_len:
                samplers.append(sequence)
                logits_rows.append(offset - 1)
        batch = StepBatch(
            input_ids=torch.tensor(input_ids, dtype=torch.long, device=device),
            positions=torch.tensor(positions, dtype=torch.long, device=device),
            slots=slots,
            logits_rows=torch.tensor(logits_rows, dtype=torch.long, device=device),
            decode_plan=decode_plan,
            native_decodes=native_decodes,
            prefills=spans,
            slot_table=kv.slot_table,
            decode_table_rows=table_rows,
            decode_lengths=lengths,
            group_size=group_size,
        )
        return batch, samplers

    def _suppressed(self, sequence: _Sequence) -> List[int]:
        params = sequence.params
        if len(sequence.output_ids) < params.min_new_tokens:
            return sorted(self.eos_token_ids.union(params.stop_token_ids))  # nothing may stop it before
        return []

    def _emit(
        self, sequence: _Sequence, token: int, logprob: float, top: Optional[List[Tuple[int, float]]] = None
    ) -> TokenEvent:
        sequence.output_ids.append(token)
        sequence.num_output += 1
        params = sequence.params
        stop_token = token in params.stop_token_ids or (token in self.eos_token_ids and not params.ignore_eos)
        # The token that stops generation adds no text (unless asked): EOS never shows, nor a stop token id.
        delta = "" if stop_token and not params.include_stop_str_in_output else sequence.detokenizer.push(token)
        text, stopped = sequence.stops.push(delta, check=sequence.num_output >= params.min_new_tokens)
        finish_reason = None
        stop_reason: Union[str, int, None] = None
        constraint = sequence.constraint
        if constraint is not None and not constraint.accept(token):
            logger.warning("request %r: the grammar refused token %d; ending it", sequence.uid, token)
            finish_reason = "stop"
        elif stopped:
            finish_reason, stop_reason = "stop", sequence.stops.matched
        elif stop_token:
            finish_reason = "stop"
            stop_reason = token if token in params.stop_token_ids else None
        elif constraint is not None and constraint.finished:
            finish_reason = "stop"  # the output is complete: nothing but EOS could follow
        elif sequence.num_output >= params.max_new_tokens:
            finish_reason = "length"
        if finish_reason is not None:
            if not stopped:
                tail, _ = sequence.stops.push(sequence.detokenizer.flush(), check=True)
                text += tail + sequence.stops.flush()
            self._release(sequence)
        return TokenEvent(
            uid=sequence.uid,
            token_id=token,
            text=text,
            logprob=logprob,
            special=token in self.special_token_ids,
            finished=finish_reason is not None,
            finish_reason=finish_reason,
            prompt_tokens=sequence.prompt_len,
            output_tokens=sequence.num_output,
            cached_tokens=sequence.num_cached,
            top_logprobs=top,
            stop_reason=stop_reason,
        )

    def _release(self, sequence: _Sequence) -> None:
        self.scheduler.remove(sequence)
        self._sequences.pop(sequence.uid, None)
        self.kv.release(sequence.uid, [*sequence.prompt_ids, *sequence.output_ids])
        sequence.num_computed = 0


def _bytes_read_per_step(model: torch.nn.Module) -> int:
    """Bytes of weights a forward pass reads whole: all but the input embeddings (a row per token), unless
    they are tied to the output layer."""
    total = sum(parameter.numel() * parameter.element_size() for parameter in model.parameters())
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    if head is None or head.weight is not embedding:
        total -= embedding.numel() * embedding.element_size()
    return total


def _resolve_dtype(name: Optional[str], device: torch.device) -> torch.dtype:
    if name is None:
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    choices = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in choices:
        raise ValueError(f"dtype must be one of {', '.join(choices)}, got {name!r}")
    return choices[name]


def _default_capacity(device: torch.device, bytes_per_token: int) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        usable = free * GPU_KV_MEMORY_FRACTION - GPU_ACTIVATION_RESERVE_BYTES
        return max(2, int(usable // bytes_per_token))
    return max(2, min(DEFAULT_CPU_KV_TOKENS, DEFAULT_CPU_KV_BYTES // bytes_per_token))


def _eos_ids(model, tokenizer) -> Set[int]:
    ids: Set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
