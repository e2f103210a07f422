"""``litserve llm MODEL_DIR``: serve a local causal LM, the equivalent of LightLLM's ``api_server``."""

from __future__ import annotations

from typing import Optional, Union


def llm(
    model_dir: str,
    port: int = 8000,
    host: str = "0.0.0.0",
    max_total_token_num: Optional[int] = None,
    max_running_requests: int = 64,
    prefill_chunk_tokens: int = 1024,  # scheduler.PREFILL_CHUNK_TOKENS, literal so that --help imports no torch
    dtype: Optional[str] = None,
    accelerator: str = "auto",
    timeout: Union[float, bool] = 600.0,
    access_log: bool = True,
    prefix_caching: bool = True,
    num_threads: Optional[int] = None,
    tool_call_parser: str = "auto",
) -> None:
    """Serve a Hugging Face causal LM directory with continuous batching.

    Routes: POST /generate and /generate_stream (LightLLM), POST /v1/completions and /v1/chat/completions,
    GET /v1/models (OpenAI), POST /tokenize and /detokenize (vLLM), GET /metrics, and a chat playground at
    GET /playground (and GET / in a browser). Set LIT_SERVER_API_KEY to require an API key.

    Args:
        model_dir: local model directory (config.json, safetensors weights, tokenizer files).
        port: TCP port to listen on.
        host: address to bind.
        max_total_token_num: KV cache capacity in tokens shared by all requests (default: from free GPU
            memory, or 16384 on CPU).
        max_running_requests: most requests generating at once.
        prefill_chunk_tokens: most prompt tokens fed per step.
        dtype: float32, bfloat16 or float16 (default: float32 on CPU, bfloat16 on GPU).
        accelerator: auto, cpu or cuda.
        timeout: seconds a request may wait for its first token (its whole reply when not streaming);
            false disables it.
        access_log: log one line per request ("POST /generate HTTP/1.1" 200); --no-access-log turns it off.
        prefix_caching: reuse the KV cache of prompts' cached prefixes (--no-prefix-caching turns it off).
        num_threads: intra-op threads of the model's worker (default: every core but one, at least 1; big
            prefill steps, and steps of large models or long contexts, use every core).
        tool_call_parser: how tool calls are read from the model's text: hermes (<tool_call> JSON, Hermes
            and Qwen), llama3_json (Llama 3), none, or auto (from the chat template).
    """
    import litserve as ls
    from litserve.llm import LLMAPI

    api = LLMAPI(
        model_dir,
        max_total_token_num=max_total_token_num,
        max_running_requests=max_running_requests,
        prefill_chunk_tokens=prefill_chunk_tokens,
        dtype=dtype,
        enable_prefix_caching=prefix_caching,
        num_threads=num_threads,
        tool_call_parser=tool_call_parser,
    )
    server = ls.LitServer(api, accelerator=accelerator, devices=1, timeout=timeout)
    server.run(host=host, port=port, generate_client_file=False, access_log=access_log)
