"""Request bodies of the LLM routes and how each maps onto the engine's ``SamplingParams``.

LightLLM's ``/generate`` and ``/generate_stream`` take ``{"inputs": str, "parameters": {...}}`` (greedy unless
``do_sample``); OpenAI's completions and chat routes sample at ``temperature`` (greedy at 0).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from litserve.llm.sampling_params import SamplingParams, StructuredSpec
from litserve.llm.structured import canonical_json
from litserve.llm.tool_parsers import forced_tool_schema
from litserve.specs.openai_types import ChatCompletionRequest, ChatMessage, ResponseFormat, Role, StreamOptions, Tool

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


class StructuredOutputs(BaseModel):
    """vLLM's ``structured_outputs`` request field: exactly one of ``json`` (a JSON schema), ``regex``,
    ``choice``, ``grammar`` (Lark or GBNF/EBNF) or ``json_object``. Unknown keys are refused, so a typo never
    leaves the output unconstrained; vLLM's backend-tuning keys are accepted and have no effect here."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    json_schema: Union[Dict[str, Any], str, None] = Field(default=None, alias="json")
    regex: Optional[str] = None
    choice: Optional[List[str]] = None
    grammar: Optional[str] = None
    json_object: Optional[bool] = None
    whitespace_pattern: Optional[str] = None
    disable_any_whitespace: Optional[bool] = None  # the default here: JSON is compact
    disable_fallback: Optional[bool] = None
    disable_additional_properties: Optional[bool] = None
    backend: Optional[str] = None

    def spec(self) -> StructuredSpec:
        given = [
            name
            for name, value in (
                ("json", self.json_schema),
                ("regex", self.regex),
                ("choice", self.choice),
                ("grammar", self.grammar),
                ("json_object", self.json_object or None),
            )
            if value is not None
        ]
        if len(given) != 1:
            named = ", ".join(given) if given else "none"
            raise ValueError(
                f"structured_outputs takes exactly one of json, regex, choice, grammar, json_object (got {named})"
            )
        whitespace = self.whitespace_pattern
        if self.json_schema is not None:
            return StructuredSpec("json", _schema_text(self.json_schema), whitespace)
        if self.json_object:
            return StructuredSpec("json", canonical_json({"type": "object"}), whitespace)
        if self.regex is not None:
            return StructuredSpec("regex", self.regex)
        if self.choice is not None:
            if not self.choice:
                raise ValueError("structured_outputs.choice must list at least one string")
            return StructuredSpec("choice", json.dumps(self.choice, ensure_ascii=False))
        return StructuredSpec("grammar", self.grammar or "")


class _OpenAISampling(BaseModel):
    """Fields the OpenAI routes share, with vLLM's extensions (``top_k``, ``repetition_penalty``,
    ``stop_token_ids``, ``structured_outputs``, the older ``guided_*`` fields, ...)."""

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
    stop_token_ids: Optional[List[int]] = None
    include_stop_str_in_output: Optional[bool] = False
    skip_special_tokens: Optional[bool] = True
    response_format: Optional[ResponseFormat] = None
    structured_outputs: Optional[StructuredOutputs] = None
    guided_json: Union[Dict[str, Any], str, None] = None
    guided_regex: Optional[str] = None
    guided_choice: Optional[List[str]] = None
    guided_grammar: Optional[str] = None
    guided_whitespace_pattern: Optional[str] = None

    def structured_spec(self) -> Optional[StructuredSpec]:
        """The output's constraint: from ``response_format``, ``structured_outputs`` or ``guided_*``."""
        sources = []
        response_format = self.response_format
        if response_format is not None and response_format.type != "text":
            if response_format.type == "json_object":
                sources.append(StructuredSpec("json", canonical_json({"type": "object"})))
            else:
                schema = response_format.json_schema.schema_
                schema = schema if schema is not None else {"type": "object"}
                sources.append(StructuredSpec("json", _schema_text(schema)))
        if self.structured_outputs is not None:
            sources.append(self.structured_outputs.spec())
        guided = {
            "json": self.guided_json,
            "regex": self.guided_regex,
            "choice": self.guided_choice,
            "grammar": self.guided_grammar,
        }
        guided = {key: value for key, value in guided.items() if value is not None}
        if guided:
            fields = {("json_schema" if key == "json" else key): value for key, value in guided.items()}
            sources.append(StructuredOutputs(**fields, whitespace_pattern=self.guided_whitespace_pattern).spec())
        if len(sources) > 1:
            raise ValueError("give one of response_format, structured_outputs or guided_*, not several")
        return sources[0] if sources else None


MAX_CHOICES = 128


def openai_sampling_params(
    request: Any, max_new_tokens: Optional[int], logprobs: Optional[int] = None
) -> SamplingParams:
    """``SamplingParams`` from an OpenAI request: samples at ``temperature``, greedy at 0."""
    n = 1 if request.n is None else request.n
    if not isinstance(n, int) or not 1 <= n <= MAX_CHOICES:
        raise ValueError(f"n must be an integer from 1 to {MAX_CHOICES}, got {request.n!r}")
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
        logprobs=logprobs,
        stop_token_ids=list(request.stop_token_ids or []),
        include_stop_str_in_output=bool(request.include_stop_str_in_output),
        skip_special_tokens=request.skip_special_tokens is not False,
        structured=request.structured_spec(),
    )


def choice_seed(seed: Optional[int], index: int) -> Optional[int]:
    """The seed of choice ``index`` of a request seeded with ``seed``: choice 0 keeps it (so ``n=1`` and the
    first of ``n`` agree), the others get well-mixed seeds of their own (splitmix64)."""
    if seed is None or index == 0:
        return seed
    value = (seed + index * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (value ^ (value >> 31)) & (2**63 - 1)


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
        if self.echo and self.logprobs is not None:
            raise ValueError("echo with logprobs (the prompt's logprobs) is not supported; drop one of them")
        return openai_sampling_params(self, self.max_tokens, self.logprobs)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class TemplateMessage(ChatMessage):
    """A chat message for the tokenizer's chat template, which is written for OpenAI's roles only."""

    role: Role


class ChatRequest(ChatCompletionRequest, _OpenAISampling):
    """``POST /v1/chat/completions``: the messages (and ``tools``) go through the tokenizer's chat template.

    Stricter than ``OpenAISpec``'s request: OpenAI's roles only, and at least one token to generate.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    messages: List[TemplateMessage]
    max_tokens: Optional[int] = Field(default=None, ge=1)
    max_completion_tokens: Optional[int] = Field(default=None, ge=1)
    temperature: Optional[float] = Field(default=1.0, ge=0, le=2)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    chat_template_kwargs: Optional[Dict[str, Any]] = None

    def prompt_ids(self, engine: Any) -> List[int]:
        messages = [template_message(message) for message in self.messages]
        tools = self.offered_tools()
        return engine.encode_chat(messages, tools=tools or None, **(self.chat_template_kwargs or {}))

    def offered_tools(self) -> List[Dict[str, Any]]:
        """The tools the template shows the model: none when ``tool_choice`` is ``"none"``."""
        if not self.tools or self.tool_choice == "none":
            return []
        return [tool.model_dump(exclude_none=True) for tool in self.tools]

    @property
    def forced_tool_choice(self) -> Any:
        """``"required"`` or ``{"type": "function", "function": {"name"}}`` when a call is forced, else None."""
        if not self.tools:
            return None
        choice = self.tool_choice
        if choice == "required":
            return choice
        if isinstance(choice, BaseModel) and getattr(choice, "type", None) == "function":
            return choice.model_dump()
        return None

    @property
    def forced_function(self) -> Optional[str]:
        forced = self.forced_tool_choice
        return forced["function"]["name"] if isinstance(forced, dict) else None

    def structured_spec(self) -> Optional[StructuredSpec]:
        spec = super().structured_spec()
        forced = self.forced_tool_choice
        if forced is None:
            return spec
        if spec is not None:
            raise ValueError("a forced tool call (tool_choice) cannot be combined with response_format")
        tools = self.offered_tools()
        return StructuredSpec("json", canonical_json(forced_tool_schema(tools, forced, self.parallel_tool_calls)))

    def sampling_params(self) -> SamplingParams:
        if self.tool_choice not in (None, "none", "auto", "required") and self.forced_tool_choice is None:
            if not self.tools:
                raise ValueError("tool_choice names a function but no tools are given")
            raise ValueError("tool_choice must be none, auto, required or {type: function, function: {name}}")
        top = None
        if self.logprobs:
            top = self.top_logprobs or 0
        elif self.top_logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return openai_sampling_params(self, self.max_new_tokens, top)


def template_message(message: Any) -> Dict[str, Any]:
    """A chat message as chat templates expect it: tool calls' arguments as dicts, tool results' ids kept."""
    data: Dict[str, Any] = {"role": message.role, "content": message.text()}
    if message.tool_calls:
        calls = []
        for call in message.tool_calls:
            arguments: Any = call.function.arguments
            try:
                arguments = json.loads(arguments)
            except ValueError:
                pass
            function = {"name": call.function.name, "arguments": arguments}
            calls.append({"id": call.id, "type": "function", "function": function})
        data["tool_calls"] = calls
    if message.tool_call_id:
        data["tool_call_id"] = message.tool_call_id
    if message.name:
        data["name"] = message.name
    return data


class TokenizeRequest(BaseModel):
    """``POST /tokenize``: ``prompt`` (a text) or ``messages`` (through the chat template), as vLLM takes them."""

    model_config = ConfigDict(extra="ignore")

    model: Optional[str] = None
    prompt: Optional[str] = None
    messages: Optional[List[ChatMessage]] = None
    tools: Optional[List[Tool]] = None
    add_special_tokens: Optional[bool] = None
    add_generation_prompt: bool = True
    return_token_strs: bool = False

    def token_ids(self, engine: Any) -> List[int]:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give either prompt or messages")
        if self.prompt is not None:
            return list(engine.tokenizer.encode(self.prompt, add_special_tokens=self.add_special_tokens is not False))
        messages = [template_message(message) for message in self.messages]
        tools = [tool.model_dump(exclude_none=True) for tool in self.tools] if self.tools else None
        return engine.encode_chat(messages, tools=tools, add_generation_prompt=self.add_generation_prompt)


class DetokenizeRequest(BaseModel):
    """``POST /detokenize``: token ids back to text."""

    model_config = ConfigDict(extra="ignore")

    model: Optional[str] = None
    tokens: List[int]


def _schema_text(schema: Union[Dict[str, Any], str]) -> str:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise ValueError(f"the JSON schema is not valid JSON: {exc}") from None
    if not isinstance(schema, (dict, bool)):
        raise ValueError("the JSON schema must be a JSON object")
    return canonical_json(schema)


def _stops(value: Union[str, List[str], None]) -> List[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
