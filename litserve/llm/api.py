"""``LLMAPI``: serve a Hugging Face causal LM directory with continuous batching on every LLM route."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional

from litserve.api import LitAPI
from litserve.codec import RequestError
from litserve.llm.metrics import LLMMetrics
from litserve.llm.replies import Reply
from litserve.llm.serving import LLMSpec
from litserve.loops import ContinuousBatchingLoop, Output
from litserve.utils import LitAPIStatus
from litserve.workers.continuous import Encoded


class LLMAPI(LitAPI):
    """A causal LM served with continuous batching over a token-level KV cache.

    Routes: LightLLM's ``POST /generate`` and ``POST /generate_stream``, OpenAI's ``POST /v1/completions``,
    ``POST /v1/chat/completions`` (the tokenizer's chat template) and ``GET /v1/models``.

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
            not fight the API process for the CPU (at least 1, at most torch's default).

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
        prefill_chunk_tokens: int = 256,
        dtype: Optional[str] = None,
        model_name: Optional[str] = None,
        enable_prefix_caching: bool = True,
        num_threads: Optional[int] = None,
    ) -> None:
        if not os.path.isdir(model_dir):
            raise ValueError(f"model_dir {model_dir!r} is not a directory")
        if max_total_token_num is not None and (not isinstance(max_total_token_num, int) or max_total_token_num < 2):
            raise ValueError(f"max_total_token_num must be an integer >= 2, got {max_total_token_num!r}")
        if not isinstance(max_running_requests, int) or max_running_requests < 1:
            raise ValueError(f"max_running_requests must be an integer >= 1, got {max_running_requests!r}")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise ValueError(f"num_threads must be an integer >= 1, got {num_threads!r}")
        name = model_name or os.path.basename(os.path.normpath(model_dir))
        super().__init__(
            stream=True, max_batch_size=max_running_requests, spec=LLMSpec(name), loop=ContinuousBatchingLoop()
        )
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
        self.metrics = LLMMetrics(None, 0)  # the worker loop replaces it with the server's

    # --- the continuous-batching hooks ----------------------------------------------------------------

    def add_request(self, uid: Any, reply: Reply) -> None:
        """Tokenize, check and queue a request; one that can never run gets a 400 at once."""
        try:
            prompt_ids = reply.prompt_ids(self.engine)
            self.engine.add_request(uid, prompt_ids, reply.sampling_params())
        except ValueError as exc:  # bad sampling values, or too large for the KV cache or the model
            raise RequestError(400, str(exc)) from None
        self.replies[uid] = reply
        self.metrics.count_prompt_tokens(len(prompt_ids))

    def has_capacity(self) -> bool:
        # The engine admits by KV budget; this only bounds its queue so cancelling a waiting one stays cheap.
        return self.engine.stats().waiting < self.max_running_requests

    def has_active_requests(self) -> bool:
        return bool(self.replies)

    def step(self, prev_outputs: Optional[List[Output]]) -> List[Output]:
        events = self.engine.step()
        now = time.monotonic()
        metrics = self.metrics
        outputs = []
        for event in events:
            reply = self.replies.get(event.uid)
            if reply is None:
                continue
            if reply.first_token_at is None:
                reply.first_token_at = now
                metrics.observe_ttft(max(0.0, now - reply.submitted))
            body = reply.on_token(event)
            outputs.append(Output(event.uid, Encoded(body, reply.headers), LitAPIStatus.OK))
            if event.finished:
                outputs.append(Output(event.uid, None, LitAPIStatus.FINISH_STREAMING))  # ends it, after the body
                del self.replies[event.uid]
                if reply.output_tokens > 1:
                    metrics.observe_tpot((now - reply.first_token_at) / (reply.output_tokens - 1))
        metrics.count_generated_tokens(len(events))
        return outputs

    def cancel(self, uid: Any) -> None:
        """The client left or timed out: free the request's KV slots now."""
        self.engine.cancel(uid)
        self.replies.pop(uid, None)

    def record_state(self) -> None:
        stats = self.engine.stats()
        self.metrics.set_state(stats.kv_tokens_used, stats.kv_tokens_capacity, stats.running, stats.waiting)
        self.metrics.set_prefix_cache(stats.kv_tokens_cached, stats.prefix_cache_queries, stats.prefix_cache_hits)

    def predict(self, x: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("LLMAPI generates through add_request/step (continuous batching)")
