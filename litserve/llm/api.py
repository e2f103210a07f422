"""``LLMAPI``: serve a Hugging Face causal LM directory with continuous batching on every LLM route."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Optional

from litserve.api import LitAPI
from litserve.codec import RequestError
from litserve.llm.metrics import LLMMetrics
from litserve.llm.replies import Reply, TokenizerReply
from litserve.llm.scheduler import PREFILL_CHUNK_TOKENS
from litserve.llm.serving import LLMSpec
from litserve.llm.tool_parsers import PARSERS, resolve_parser
from litserve.loops import ContinuousBatchingLoop, Output
from litserve.status import LitAPIStatus
from litserve.workers.continuous import Encoded


class LLMAPI(LitAPI):
    """A causal LM served with continuous batching over a token-level KV cache.

    Routes: LightLLM's ``POST /generate`` and ``POST /generate_stream``, OpenAI's ``POST /v1/completions``,
    ``POST /v1/chat/completions`` (the tokenizer's chat template) and ``GET /v1/models``, vLLM's
    ``POST /tokenize`` and ``POST /detokenize``, and a chat playground at ``GET /playground``.

    Args:
        model_dir: a local model directory (config.json, safetensors weights, tokenizer files); LLaMA,
            Mistral, Qwen2 and GPT-2 architectures.
        max_total_token_num: KV cache capacity in tokens, shared by all requests (LightLLM's option).
            Default: on a GPU what fits in the memory left after loading the model; on CPU 16384.
        max_running_requests: most requests generating at once.
        prefill_chunk_tokens: most prompt tokens fed per step, so long prompts never stall other requests.
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (default: float32 on CPU, bfloat16 on GPU).
        model_name: the id at ``/v1/models`` (default: the directory's name).
        enable_prefix_caching: reuse the KV cache of the longest cached prefix of each prompt (shared system
            prompts, multi-turn chats, retries); the reused count is ``usage.prompt_tokens_details.cached_tokens``.
        num_threads: intra-op threads of the worker's torch. Default: every core but one, so the model does
            not fight the API process for the CPU (at least 1, at most torch's default); steps that feed 128+
            prompt tokens, or read 8 MiB+ of a large model's weights per token they stream, and decode
            attention over long contexts use every core (``litserve.llm.threads``).
        tool_call_parser: how tool calls are read from the model's text: ``"hermes"`` (``<tool_call>`` JSON,
            Hermes and Qwen), ``"llama3_json"`` (Llama 3), ``"none"``, or ``"auto"`` (from the chat template).

    Example::

        import litserve as ls
        from litserve.llm import LLMAPI

        ls.LitServer(LLMAPI("/models/tiny-llama", max_total_token_num=4096)).run(port=8000)
    """

    def __init__(
        self,
        model_dir: str,
        max_total_token_num: Optional[int] = None,
        max_running_requests: int = 64,
        prefill_chunk_tokens: int = PREFILL_CHUNK_TOKENS,
        dtype: Optional[str] = None,
        model_name: Optional[str] = None,
        enable_prefix_caching: bool = True,
        num_threads: Optional[int] = None,
        tool_call_parser: str = "auto",
    ) -> None:
        if not os.path.isdir(model_dir):
            raise ValueError(f"model_dir {model_dir!r} is not a directory")
        if max_total_token_num is not None and (not isinstance(max_total_token_num, int) or max_total_token_num < 2):
            raise ValueError(f"max_total_token_num must be an integer >= 2, got {max_total_token_num!r}")
        if not isinstance(max_running_requests, int) or max_running_requests < 1:
            raise ValueError(f"max_running_requests must be an integer >= 1, got {max_running_requests!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
        if tool_call_parser not in ("auto", "none", *PARSERS):
            choices = ", ".join(PARSERS)
            raise ValueError(f"tool_call_parser must be auto, none or one of {choices}, got {tool_call_parser!r}")
        name = model_name or os.path.basename(os.path.normpath(model_dir))
        spec = LLMSpec(name, max_model_len=configured_max_model_len(model_dir, max_total_token_num))
        super().__init__(stream=True, max_batch_size=max_running_requests, spec=spec, loop=ContinuousBatchingLoop())
        self.tool_call_parser = tool_call_parser
        self.model_dir = model_dir
        self.max_total_token_num = max_total_token_num
        self.max_running_requests = max_running_requests
        self.prefill_chunk_tokens = prefill_chunk_tokens
        self.dtype = dtype
        self.enable_prefix_caching = enable_prefix_caching
        self.num_threads = num_threads
        self.metrics: Optional[LLMMetrics] = None

    def setup(self, device: str) -> None:
        from litserve.llm.engine import LLMEngine
        from litserve.llm.threads import set_worker_threads

        set_worker_threads(self.num_threads)
        self.engine = LLMEngine(
            self.model_dir,
            device=device,
            max_total_token_num=self.max_total_token_num,
            max_running_requests=self.max_running_requests,
            prefill_chunk_tokens=self.prefill_chunk_tokens,
            dtype=self.dtype,
            enable_prefix_caching=self.enable_prefix_caching,
        )
        self.replies: Dict[Any, Reply] = {}
        self.ready: List[Output] = []  # answers due at the next step that need no generation (/tokenize)
        self.metrics = LLMMetrics(None, 0)  # the worker loop replaces it with the server's
        self.tool_parser = resolve_parser(self.tool_call_parser, getattr(self.engine.tokenizer, "chat_template", None))

    # --- the continuous-batching hooks ----------------------------------------------------------------

    def add_request(self, uid: Any, reply: Reply) -> None:
        """Tokenize, check and queue a request (its ``n`` choices as ``n`` engine requests); one that can never
        run, or whose grammar does not compile, gets a 400 at once."""
        engine = self.engine
        if isinstance(reply, TokenizerReply):
            try:
                body = reply.answer(engine)
            except ValueError as exc:
                raise RequestError(400, str(exc)) from None
            self.ready.append(Output(uid, Encoded(body), LitAPIStatus.OK))
            self.ready.append(Output(uid, None, LitAPIStatus.FINISH_STREAMING))
            return
        added = []
        try:
            prompt_ids = reply.prompt_ids(engine)
            params = reply.choice_params(reply.sampling_params())
            reply.bind(engine, prompt_ids, self.tool_parser)
            for index, choice_params in enumerate(params):
                engine.add_request((uid, index), prompt_ids, choice_params)
                added.append((uid, index))
        except ValueError as exc:  # bad values, too large for the KV cache or the model, a grammar that fails
            for engine_uid in added:
                engine.cancel(engine_uid)
            raise RequestError(400, str(exc)) from None
        self.replies[uid] = reply
        self.metrics.count_prompt_tokens(len(prompt_ids) * len(params))

    def has_capacity(self) -> bool:
        # The engine admits by KV budget; this only bounds its queue so cancelling a waiting one stays cheap.
        return self.engine.stats().waiting < self.max_running_requests

    def has_active_requests(self) -> bool:
        return bool(self.replies or self.ready)

    def step(self, prev_outputs: Optional[List[Output]]) -> List[Output]:
        outputs, self.ready = self.ready, []
        events = self.engine.step()
        now = time.monotonic()
        metrics = self.metrics
        for event in events:
            uid, index = event.uid
            reply = self.replies.get(uid)
            if reply is None:
                continue
            if reply.first_token_at is None:
                reply.first_token_at = now
                metrics.observe_ttft(max(0.0, now - reply.submitted))
            body = reply.on_token(index, event)
            outputs.append(Output(uid, Encoded(body, reply.headers), LitAPIStatus.OK))
            if event.finished:
                if event.output_tokens > 1:
                    metrics.observe_tpot((now - reply.first_token_at) / (event.output_tokens - 1))
                if reply.finished:
                    outputs.append(Output(uid, None, LitAPIStatus.FINISH_STREAMING))  # ends it, after the body
                    del self.replies[uid]
        metrics.count_generated_tokens(len(events))
        return outputs

    def cancel(self, uid: Any) -> None:
        """The client left or timed out: free the KV slots of every choice of the request now."""
        reply = self.replies.pop(uid, None)
        for index in range(reply.n if reply is not None else 1):
            self.engine.cancel((uid, index))

    def record_state(self, pending: int = 0) -> None:
        """Refresh the gauges; ``pending`` requests reached the worker and wait to be handed to the engine."""
        stats = self.engine.stats()
        self.metrics.set_state(stats.kv_tokens_used, stats.kv_tokens_capacity, stats.running, stats.waiting + pending)
        cache = (stats.kv_tokens_cached, stats.prefix_cache_queries, stats.prefix_cache_hits, stats.kv_tokens_evictable)
        self.metrics.set_prefix_cache(*cache)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LLMAPI generates through add_request/step (continuous batching)")


def configured_max_model_len(model_dir: str, max_total_token_num: Optional[int]) -> Optional[int]:
    """The most tokens a request may have, from the model's config (and the KV capacity when it is given)."""
    try:
        with open(os.path.join(model_dir, "config.json")) as file:
            config = json.load(file)
    except (OSError, ValueError):
        return max_total_token_num
    context = config.get("max_position_embeddings") or config.get("n_positions")
    limits = [value for value in (context, max_total_token_num) if isinstance(value, int)]
    return min(limits) if limits else None
