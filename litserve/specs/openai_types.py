"""Pydantic models for the OpenAI Chat Completions wire format.

Request models are lenient (unknown fields are ignored) so that any version of the official ``openai`` SDK, or other
OpenAI-compatible clients, can talk to the server. Reply models serialize to JSON that the SDK's own response types
(``openai.types.chat.ChatCompletion`` / ``ChatCompletionChunk`` / ``openai.types.Model``) accept, including under the
SDK's strict response validation.

Streaming notes (facts about the SDK's SSE client):

* each event is a ``data: <json>`` line followed by a blank line; the stream ends with ``data: [DONE]``;
* every ``data`` payload other than ``[DONE]`` is parsed as JSON, so never send non-JSON data lines;
* a payload whose top-level ``"error"`` key is truthy makes the SDK raise ``openai.APIError`` with
  ``error["message"]`` as its message, so :class:`ErrorResponse` can be sent mid-stream to signal a failure.
"""

import json
import time
import uuid
from enum import Enum
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "SSE_DONE",
    "AllowedToolsChoice",
    "AudioContent",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatCompletionResponseChoice",
    "ChatCompletionStreamingChoice",
    "ChatMessage",
    "ChatMessageWithUsage",
    "ChoiceDelta",
    "ChoiceDeltaToolCall",
    "ChoiceDeltaToolCallFunction",
    "ContentPart",
    "ErrorDetail",
    "ErrorResponse",
    "FileContent",
    "FileData",
    "FinishReason",
    "Function",
    "FunctionCall",
    "FunctionDefinition",
    "ImageContent",
    "ImageContentURL",
    "ImageDetail",
    "InputAudio",
    "JSONSchema",
    "ModelCard",
    "ModelList",
    "NamedToolChoice",
    "NamedToolChoiceFunction",
    "RefusalContent",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
    "Role",
    "StreamOptions",
    "TextContent",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "UsageInfo",
    "make_chat_completion_id",
    "make_tool_call_id",
    "model_not_found_error",
    "to_sse",
]

#: Model name used when a request does not name one.
DEFAULT_MODEL_NAME = ""

#: Terminal server-sent event of an OpenAI stream.
SSE_DONE = "data: [DONE]\n\n"

#: The roles OpenAI defines. A request's message may carry any string as its role (as LitServe and vLLM
#: accept): the API's own hooks decide what a custom role means.
Role = Literal["system", "user", "assistant", "tool", "developer", "function"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


def make_chat_completion_id() -> str:
    """Return a fresh chat completion id of the form ``chatcmpl-<32 hex chars>``."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def make_tool_call_id() -> str:
    """Return a fresh tool call id of the form ``call_<24 hex chars>``."""
    return f"call_{uuid.uuid4().hex[:24]}"


def _now() -> int:
    return int(time.time())


def to_sse(payload: Union[BaseModel, Dict[str, Any], str]) -> str:
    """Format a model, dict or pre-serialized JSON string as one ``data: ...`` server-sent event."""
    if isinstance(payload, BaseModel):
        data = payload.model_dump_json()
    elif isinstance(payload, str):
        data = payload
    else:
        data = json.dumps(payload)
    return f"data: {data}\n\n"


class _Lenient(BaseModel):
    """Base for request-side models: unknown fields are dropped instead of rejected."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---------------------------------------------------------------------------------------------------------------------
# usage
# ---------------------------------------------------------------------------------------------------------------------


class UsageInfo(BaseModel):
    """Token accounting; ``total_tokens`` defaults to ``prompt_tokens + completion_tokens``. Supports ``sum()``."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: Optional[int] = None
    prompt_tokens_details: Optional[Dict[str, Any]] = None
    completion_tokens_details: Optional[Dict[str, Any]] = None

    @field_validator("prompt_tokens", "completion_tokens", mode="before")
    @classmethod
    def _none_is_zero(cls, value: Any) -> Any:
        return 0 if value is None else value

    @model_validator(mode="after")
    def _fill_total(self) -> "UsageInfo":
        if self.total_tokens is None:
            self.total_tokens = self.prompt_tokens + self.completion_tokens
        return self

    def __add__(self, other: "UsageInfo") -> "UsageInfo":
        if not isinstance(other, UsageInfo):
            return NotImplemented
        return UsageInfo(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=(self.total_tokens or 0) + (other.total_tokens or 0),
        )

    def __radd__(self, other: Any) -> "UsageInfo":
        if other == 0:  # lets ``sum(list_of_usage)`` start from the int 0
            return self
        return self.__add__(other)


# ---------------------------------------------------------------------------------------------------------------------
# message content parts
# ---------------------------------------------------------------------------------------------------------------------


class TextContent(_Lenient):
    """``{"type": "text", "text": ...}`` content part."""

    type: Literal["text"] = "text"
    text: str


class ImageDetail(str, Enum):
    """The ``detail`` levels OpenAI defines for an image (``ImageContentURL.detail`` accepts any string)."""

    auto = "auto"
    low = "low"
    high = "high"


class ImageContentURL(_Lenient):
    """Image reference: an http(s) URL or a ``data:image/...;base64,`` URL, with an optional detail level."""

    url: str
    detail: Optional[str] = "auto"


class ImageContent(_Lenient):
    """``{"type": "image_url", "image_url": {"url": ..., "detail": ...}}`` content part."""

    type: Literal["image_url"] = "image_url"
    image_url: Union[ImageContentURL, str]


class InputAudio(_Lenient):
    """Base64-encoded audio with its format (``"wav"`` or ``"mp3"``)."""

    data: str
    format: str


class AudioContent(_Lenient):
    """``{"type": "input_audio", "input_audio": {"data": ..., "format": ...}}`` content part."""

    type: Literal["input_audio"] = "input_audio"
    input_audio: InputAudio


class RefusalContent(_Lenient):
    """``{"type": "refusal", "refusal": ...}`` content part (assistant messages only)."""

    type: Literal["refusal"] = "refusal"
    refusal: str


class FileData(_Lenient):
    """File payload of a ``file`` content part."""

    file_data: Optional[str] = None
    file_id: Optional[str] = None
    filename: Optional[str] = None


class FileContent(_Lenient):
    """``{"type": "file", "file": {...}}`` content part."""

    type: Literal["file"] = "file"
    file: FileData


ContentPart = Annotated[
    Union[TextContent, ImageContent, AudioContent, RefusalContent, FileContent],
    Field(discriminator="type"),
]


# ---------------------------------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------------------------------


class FunctionCall(_Lenient):
    """Name and JSON-encoded arguments of a function the model wants to call. A dict is JSON-encoded."""

    name: str
    arguments: str

    @field_validator("arguments", mode="before")
    @classmethod
    def _encode_arguments(cls, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        return value


class ToolCall(_Lenient):
    """A tool call in an assistant message; ``id`` is generated when omitted, ``index`` only matters in streams."""

    index: Optional[int] = None
    id: str = Field(default_factory=make_tool_call_id)
    type: Literal["function"] = "function"
    function: FunctionCall

    @model_serializer(mode="wrap")
    def _drop_null_index(self, handler: Any) -> Dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and data.get("index") is None:
            data.pop("index", None)
        return data


class Function(_Lenient):
    """Function definition offered to the model as a tool."""

    name: str
    description: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    strict: Optional[bool] = None


FunctionDefinition = Function


class Tool(_Lenient):
    """``{"type": "function", "function": {...}}`` tool definition."""

    type: Literal["function"] = "function"
    function: Function


class NamedToolChoiceFunction(_Lenient):
    """Name of the function the model is forced to call."""

    name: str


class NamedToolChoice(_Lenient):
    """``{"type": "function", "function": {"name": ...}}`` forcing one specific tool."""

    type: Literal["function"] = "function"
    function: NamedToolChoiceFunction


class AllowedToolsChoice(_Lenient):
    """``{"type": "allowed_tools", "allowed_tools": {"mode": ..., "tools": [...]}}`` tool choice."""

    type: Literal["allowed_tools"] = "allowed_tools"
    allowed_tools: Dict[str, Any]


ToolChoice = Union[
    Literal["none", "auto", "required"],
    Annotated[Union[NamedToolChoice, AllowedToolsChoice], Field(discriminator="type")],
]


# ---------------------------------------------------------------------------------------------------------------------
# response format
# ---------------------------------------------------------------------------------------------------------------------


class ResponseFormatText(_Lenient):
    """Plain text output (the default)."""

    type: Literal["text"] = "text"


class ResponseFormatJSONObject(_Lenient):
    """JSON mode: the output must be a valid JSON object."""

    type: Literal["json_object"] = "json_object"


class JSONSchema(_Lenient):
    """Structured-output schema. The JSON key is ``schema``; the attribute is ``schema_`` (``schema`` is reserved)."""

    name: str
    description: Optional[str] = None
    schema_: Optional[Dict[str, Any]] = Field(default=None, alias="schema")
    strict: Optional[bool] = None

    @model_serializer(mode="wrap")
    def _schema_key(self, handler: Any) -> Dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and "schema_" in data:
            data["schema"] = data.pop("schema_")
        return data


class ResponseFormatJSONSchema(_Lenient):
    """Structured outputs: the output must follow ``json_schema``."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: JSONSchema


ResponseFormat = Annotated[
    Union[ResponseFormatText, ResponseFormatJSONObject, ResponseFormatJSONSchema],
    Field(discriminator="type"),
]


class StreamOptions(_Lenient):
    """Streaming options; ``include_usage`` asks for a final chunk with ``usage`` and empty ``choices``."""

    include_usage: Optional[bool] = False
    include_obfuscation: Optional[bool] = None


# ---------------------------------------------------------------------------------------------------------------------
# messages and request
# ---------------------------------------------------------------------------------------------------------------------


class ChatMessage(_Lenient):
    """One chat message, used both in requests and as the assistant message of a (non-streaming) reply.

    ``role`` is any string: OpenAI's roles (see ``Role``) or one of the API's own, passed to it as given.
    """

    role: str
    content: Optional[Union[str, List[ContentPart]]] = None
    name: Optional[str] = None
    tool_calls: Optional[List[ToolCall]] = None
    tool_call_id: Optional[str] = None
    refusal: Optional[str] = None

    def text(self) -> str:
        """Concatenate the textual content of the message (text parts only for list content)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextContent))


class ChatMessageWithUsage(ChatMessage):
    """A :class:`ChatMessage` that also carries token counts (what a server's ``encode_response`` may yield)."""

    prompt_tokens: Optional[int] = 0
    completion_tokens: Optional[int] = 0
    total_tokens: Optional[int] = 0


class ChatCompletionRequest(_Lenient):
    """Body of ``POST /v1/chat/completions``. Unknown fields are ignored; explicit ``null`` falls back to defaults."""

    model: str = DEFAULT_MODEL_NAME
    messages: List[ChatMessage]
    temperature: Optional[float] = Field(default=0.7, ge=0, le=2)
    top_p: Optional[float] = Field(default=1.0, ge=0, le=1)
    n: int = Field(default=1, ge=1, le=128)
    # 0 reaches the API as given (what FastAPI's /docs pre-fills); the spec treats it as no limit.
    max_tokens: Optional[int] = Field(default=None, ge=0)
    max_completion_tokens: Optional[int] = Field(default=None, ge=0)
    stop: Optional[Union[str, List[str]]] = None
    seed: Optional[int] = None
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    presence_penalty: Optional[float] = 0.0
    frequency_penalty: Optional[float] = 0.0
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = None
    logit_bias: Optional[Dict[str, float]] = None
    user: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    tools: Optional[List[Tool]] = None
    tool_choice: Optional[ToolChoice] = "auto"
    parallel_tool_calls: Optional[bool] = None
    response_format: Optional[ResponseFormat] = None
    reasoning_effort: Optional[str] = None
    modalities: Optional[List[str]] = None
    service_tier: Optional[str] = None
    store: Optional[bool] = None
    verbosity: Optional[str] = None

    @field_validator("model", "n", "stream", mode="before")
    @classmethod
    def _null_means_default(cls, value: Any, info: ValidationInfo) -> Any:
        # the SDK sends ``null`` when a caller passes ``n=None`` / ``stream=None`` explicitly
        if value is None:
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)
        return value

    @property
    def include_usage(self) -> bool:
        """Whether a streaming reply must end with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def max_new_tokens(self) -> Optional[int]:
        """``max_completion_tokens`` if given, else the legacy ``max_tokens``."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def stop_sequences(self) -> List[str]:
        """``stop`` normalized to a list."""
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


# ---------------------------------------------------------------------------------------------------------------------
# non-streaming reply
# ---------------------------------------------------------------------------------------------------------------------


class ChatCompletionResponseChoice(BaseModel):
    """One choice of a non-streaming reply. The SDK (strict mode) requires a non-null ``finish_reason`` here."""

    index: int = 0
    message: ChatMessage
    finish_reason: Optional[FinishReason] = "stop"
    logprobs: Optional[Dict[str, Any]] = None


class ChatCompletionResponse(BaseModel):
    """``object="chat.completion"`` reply of a non-streaming request."""

    id: str = Field(default_factory=make_chat_completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: List[ChatCompletionResponseChoice]
    usage: UsageInfo = Field(default_factory=UsageInfo)
    system_fingerprint: Optional[str] = None


# ---------------------------------------------------------------------------------------------------------------------
# streaming reply
# ---------------------------------------------------------------------------------------------------------------------


class ChoiceDeltaToolCallFunction(BaseModel):
    """Partial function call in a stream: ``name`` comes first, ``arguments`` may arrive in pieces."""

    name: Optional[str] = None
    arguments: Optional[str] = None


class ChoiceDeltaToolCall(BaseModel):
    """Tool call fragment in a stream; ``index`` (required by the SDK) groups fragments of one call."""

    index: int
    id: Optional[str] = None
    type: Optional[Literal["function"]] = None
    function: Optional[ChoiceDeltaToolCallFunction] = None


class ChoiceDelta(BaseModel):
    """Incremental message content of a stream chunk. Accepts :class:`ToolCall` objects; fills missing indexes."""

    role: Optional[Role] = None
    content: Optional[str] = None
    tool_calls: Optional[List[ChoiceDeltaToolCall]] = None
    refusal: Optional[str] = None

    @field_validator("tool_calls", mode="before")
    @classmethod
    def _normalize_tool_calls(cls, value: Any) -> Any:
        if value is None:
            return None
        normalized = []
        for position, call in enumerate(value):
            if isinstance(call, BaseModel) and not isinstance(call, ChoiceDeltaToolCall):
                call = call.model_dump()
            if isinstance(call, dict) and call.get("index") is None:
                call = {**call, "index": position}
            normalized.append(call)
        return normalized


class ChatCompletionStreamingChoice(BaseModel):
    """One choice of a stream chunk; ``finish_reason`` is null until the choice's last chunk."""

    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: Optional[FinishReason] = None
    logprobs: Optional[Dict[str, Any]] = None


class ChatCompletionChunk(BaseModel):
    """``object="chat.completion.chunk"`` event. The usage-only chunk has ``choices=[]`` and ``usage`` set."""

    id: str = Field(default_factory=make_chat_completion_id)
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=_now)
    model: str
    choices: List[ChatCompletionStreamingChoice] = Field(default_factory=list)
    usage: Optional[UsageInfo] = None
    system_fingerprint: Optional[str] = None


# ---------------------------------------------------------------------------------------------------------------------
# models endpoint and errors
# ---------------------------------------------------------------------------------------------------------------------


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``; ``max_model_len`` (vLLM's field) where the server knows it."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=_now)
    owned_by: str = "litserve"
    max_model_len: Optional[int] = None

    @model_serializer(mode="wrap")
    def _drop_unknown_length(self, handler: Any) -> Dict[str, Any]:
        data = handler(self)
        if isinstance(data, dict) and data.get("max_model_len") is None:
            data.pop("max_model_len", None)
        return data


class ModelList(BaseModel):
    """Reply of ``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: List[ModelCard] = Field(default_factory=list)


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class ErrorDetail(BaseModel):
    """Body of the ``error`` key of an OpenAI error reply."""

    message: str
    type: str = "invalid_request_error"
    param: Optional[str] = None
    code: Optional[Union[str, int]] = None


def model_not_found_error(message: str) -> ErrorDetail:
    """The error OpenAI (and vLLM) answer, with 404, for a model they do not serve."""
    return ErrorDetail(message=message, type="invalid_request_error", code="model_not_found")


class ErrorResponse(BaseModel):
    """``{"error": {"message", "type", "param", "code"}}``; valid both as an HTTP error body and mid-stream."""

    error: ErrorDetail

    @classmethod
    def from_status(
        cls, status_code: int, message: str, param: Optional[str] = None, code: Optional[Union[str, int]] = None
    ) -> "ErrorResponse":
        """Build an error whose ``type`` follows OpenAI's naming for ``status_code``."""
        error_type = _ERROR_TYPES.get(status_code, "server_error" if status_code >= 500 else "invalid_request_error")
        return cls(error=ErrorDetail(message=message, type=error_type, param=param, code=code))
