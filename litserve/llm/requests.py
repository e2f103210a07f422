"""Request bodies of the LLM routes and how each maps onto the engine's ``SamplingParams``.

LightLLM's ``/generate`` and ``/generate_stream`` take ``{"inputs": str, "parameters": {...}}`` (greedy unless
``do_sample``); OpenAI's completions and chat routes sample at ``temperature`` (greedy at 0).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from litserve.llm.sampling import SamplingParams
from litserve.specs.openai_types import ChatCompletionRequest, ChatMessage, Role, StreamOptions

# Tokens generated when a request does not say (LightLLM's and OpenAI's completions default).
DEFAULT_MAX_NEW_TOKENS = 16


class GenerateParameters(BaseModel):
    """LightLLM's ``parameters``; unknown fields are rejected so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")

    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    min_new_tokens: int = 0
    stop_sequences: Union[str, List[str], None] = None
    ignore_eos: bool = False
    seed: Optional[int] = None


class GenerateRequest(BaseModel):
    """``POST /generate`` and ``POST /generate_stream``."""

    model_config = ConfigDict(extra="forbid")

    inputs: str
    parameters: GenerateParameters = Field(default_factory=GenerateParameters)

    def sampling_params(self) -> SamplingParams:
        fields = self.parameters.model_dump()
        fields["stop_sequences"] = _stops(fields["stop_sequences"])
        return SamplingParams(**fields)


class _OpenAISampling(BaseModel):
    """Fields the OpenAI routes share, with the vLLM extensions (``top_k``, ``repetition_penalty``, ...)."""

    model_config = ConfigDict(extra="ignore")

    temperature: Optional[float] = 1.0
    top_p: Optional[float] = 1.0
    top_k: Optional[int] = -1
    n: Optional[int] = 1
    stop: Union[str, List[str], None] = None
    seed: Optional[int] = None
    presence_penalty: Optional[float] = 0.0
    frequency_penalty: Optional[float] = 0.0
    repetition_penalty: Optional[float] = 1.0
    min_tokens: Optional[int] = 0
    ignore_eos: Optional[bool] = False


def openai_sampling_params(request: Any, max_new_tokens: Optional[int]) -> SamplingParams:
    """``SamplingParams`` from an OpenAI request: samples at ``temperature``, greedy at 0."""
    if (request.n or 1) != 1:
        raise ValueError(f"n must be 1 (one choice per request), got {request.n}")
    temperature = 1.0 if request.temperature is None else request.temperature
    return SamplingParams(
        max_new_tokens=max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        min_new_tokens=request.min_tokens or 0,
        temperature=temperature,
        do_sample=temperature > 0,
        top_p=1.0 if request.top_p is None else request.top_p,
        top_k=-1 if request.top_k in (None, 0) else request.top_k,
        repetition_penalty=1.0 if request.repetition_penalty is None else request.repetition_penalty,
        frequency_penalty=request.frequency_penalty or 0.0,
        presence_penalty=request.presence_penalty or 0.0,
        stop_sequences=_stops(request.stop),
        ignore_eos=bool(request.ignore_eos),
        seed=request.seed,
    )


class CompletionRequest(_OpenAISampling):
    """``POST /v1/completions`` (legacy completions): one prompt, text or token ids."""

    model: Optional[str] = None
    prompt: Union[str, List[int], List[str]]
    max_tokens: Optional[int] = DEFAULT_MAX_NEW_TOKENS
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    echo: Optional[bool] = False
    logprobs: Optional[int] = None

    def prompt_ids(self, engine: Any) -> List[int]:
        prompt = self.prompt
        if isinstance(prompt, list) and prompt and all(isinstance(part, str) for part in prompt):
            if len(prompt) != 1:
                raise ValueError(f"prompt must be one string (batches are not supported), got {len(prompt)}")
            prompt = prompt[0]
        if isinstance(prompt, str):
            return engine.encode_prompt(prompt)
        return list(prompt)

    def sampling_params(self) -> SamplingParams:
        if self.echo:
            raise ValueError("echo is not supported")
        if self.logprobs:
            raise ValueError("logprobs is not supported on /v1/completions")
        return openai_sampling_params(self, self.max_tokens)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TemplateMessage(ChatMessage):
    """A chat message for the tokenizer's chat template, which is written for OpenAI's roles only."""

    role: Role


class ChatRequest(ChatCompletionRequest):
    """``POST /v1/chat/completions``: the messages go through the tokenizer's chat template.

    Stricter than ``OpenAISpec``'s request: OpenAI's roles only, and at least one token to generate.
    """

    messages: List[TemplateMessage]
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=1.0, ge=0, le=2)
    top_k: Optional[int] = -1
    repetition_penalty: Optional[float] = 1.0
    min_tokens: Optional[int] = 0
    ignore_eos: Optional[bool] = False

    def prompt_ids(self, engine: Any) -> List[int]:
        messages: List[Dict[str, Any]] = [
            {"role": message.role, "content": message.text()} for message in self.messages
        ]
        return engine.encode_chat(messages)

    def sampling_params(self) -> SamplingParams:
        if self.tools:
            raise ValueError("tools are not supported by this server")
        return openai_sampling_params(self, self.max_new_tokens)


def _stops(value: Union[str, List[str], None]) -> List[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
