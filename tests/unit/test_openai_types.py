"""Wire-format tests for the OpenAI request/response models.

Requests are checked against bodies shaped like the ones the official ``openai`` SDK sends (hand-built and captured
from the real SDK through a mock transport); replies are checked with the SDK's own pydantic types, both with plain
``model_validate`` and end to end through an ``openai.OpenAI`` client with strict response validation.
"""

import array
import base64
import json
import struct
from typing import Any, Callable, Dict, List

import httpx2  # the HTTP library the openai SDK is built on
import openai
import pytest
from openai.types import CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion as SDKChatCompletion
from openai.types.chat import ChatCompletionChunk as SDKChatCompletionChunk
from pydantic import ValidationError

from litserve.specs.openai_embedding_types import (
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsageInfo,
    decode_embedding_base64,
    encode_embedding_base64,
)
from litserve.specs.openai_types import (
    SSE_DONE,
    AudioContent,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatCompletionResponseChoice,
    ChatCompletionStreamingChoice,
    ChatMessage,
    ChoiceDelta,
    ChoiceDeltaToolCall,
    ChoiceDeltaToolCallFunction,
    ErrorResponse,
    FunctionCall,
    ImageContent,
    ImageContentURL,
    ModelCard,
    ModelList,
    NamedToolChoice,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseFormatText,
    TextContent,
    ToolCall,
    UsageInfo,
    make_chat_completion_id,
    to_sse,
)

# ---------------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------------


def make_client(handler: Callable[[Any], Any], strict: bool = True) -> "openai.OpenAI":
    """Return an SDK client whose HTTP traffic goes to ``handler`` (strict reply validation by default)."""
    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://testserver/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
        _strict_response_validation=strict,
    )


def sse_response(events: List[str]) -> Any:
    return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content="".join(events).encode())


def json_response(model: Any, status_code: int = 200) -> Any:
    return httpx2.Response(
        status_code, headers={"content-type": "application/json"}, content=model.model_dump_json().encode()
    )


def roundtrip(model: Any) -> Dict[str, Any]:
    return json.loads(model.model_dump_json())


def float32(values: List[float]) -> List[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


# ---------------------------------------------------------------------------------------------------------------------
# chat requests, hand-built bodies in the SDK's wire format
# ---------------------------------------------------------------------------------------------------------------------

MULTIMODAL_BODY: Dict[str, Any] = {
    "model": "my-model",
    "messages": [
        {"role": "developer", "content": "Be terse."},
        {"role": "system", "content": [{"type": "text", "text": "You are helpful."}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this image and audio?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
            "name": "alice",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"c":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": "sunny"},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_completion_tokens": 64,
    "stop": ["\n\n", "END"],
    "seed": 7,
}


def test_request_multimodal_messages():
    req = ChatCompletionRequest.model_validate(MULTIMODAL_BODY)
    assert req.model == "my-model"
    assert [m.role for m in req.messages] == ["developer", "system", "user", "assistant", "tool"]

    system = req.messages[1]
    assert isinstance(system.content, list)
    assert isinstance(system.content[0], TextContent)
    assert system.text() == "You are helpful."

    parts = req.messages[2].content
    assert isinstance(parts, list)
    assert isinstance(parts[0], TextContent) and parts[0].text.startswith("What is")
    assert isinstance(parts[1], ImageContent) and isinstance(parts[1].image_url, ImageContentURL)
    assert parts[1].image_url.url == "https://example.com/cat.png"
    assert parts[1].image_url.detail == "high"
    assert parts[2].image_url.url.startswith("data:image/png;base64,")
    assert isinstance(parts[3], AudioContent)
    assert parts[3].input_audio.data == "UklGRg==" and parts[3].input_audio.format == "wav"
    assert req.messages[2].name == "alice"

    assistant = req.messages[3]
    assert assistant.content is None
    assert assistant.tool_calls[0].id == "call_abc"
    assert assistant.tool_calls[0].function.name == "get_weather"
    assert json.loads(assistant.tool_calls[0].function.arguments) == {"c": "Paris"}
    assert req.messages[4].tool_call_id == "call_abc"

    assert req.stream is True and req.include_usage is True
    assert req.max_new_tokens == 64
    assert req.stop_sequences == ["\n\n", "END"]
    assert req.seed == 7 and req.n == 1


def test_request_tools_without_description_and_tool_choice():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "weather?"}],
        "tools": [
            {"type": "function", "function": {"name": "no_args"}},
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
    }
    req = ChatCompletionRequest.model_validate(body)
    assert req.tools[0].function.name == "no_args"
    assert req.tools[0].function.description is None and req.tools[0].function.parameters is None
    assert req.tools[1].function.parameters["properties"]["city"] == {"type": "string"}
    assert req.tools[1].function.strict is True
    assert isinstance(req.tool_choice, NamedToolChoice) and req.tool_choice.function.name == "get_weather"
    assert req.parallel_tool_calls is False

    for choice in ("none", "auto", "required"):
        assert ChatCompletionRequest.model_validate({**body, "tool_choice": choice}).tool_choice == choice
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**body, "tool_choice": "sometimes"})
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**body, "tools": [{"type": "function", "function": {}}]})


def test_request_response_formats():
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    req = ChatCompletionRequest.model_validate(
        {
            **base,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "thing", "description": "a thing", "schema": schema, "strict": True},
            },
        }
    )
    fmt = req.response_format
    assert isinstance(fmt, ResponseFormatJSONSchema)
    assert fmt.json_schema.name == "thing" and fmt.json_schema.description == "a thing"
    assert fmt.json_schema.schema_ == schema and fmt.json_schema.strict is True
    # the wire key stays ``schema`` when dumped again
    assert json.loads(fmt.model_dump_json())["json_schema"]["schema"] == schema
    assert fmt.model_dump()["json_schema"]["schema"] == schema

    minimal = ChatCompletionRequest.model_validate(
        {**base, "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}
    )
    assert minimal.response_format.json_schema.schema_ is None

    obj = ChatCompletionRequest.model_validate({**base, "response_format": {"type": "json_object"}})
    assert isinstance(obj.response_format, ResponseFormatJSONObject)
    text = ChatCompletionRequest.model_validate({**base, "response_format": {"type": "text"}})
    assert isinstance(text.response_format, ResponseFormatText)
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({**base, "response_format": {"type": "yaml"}})
    with pytest.raises(ValidationError):  # json_schema requires its json_schema object
        ChatCompletionRequest.model_validate({**base, "response_format": {"type": "json_schema"}})


def test_request_unknown_fields_are_ignored():
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"x": 1}}], "weird": 1},
        ],
        "brand_new_param": {"nested": True},
        "web_search_options": {},
        "prompt_cache_key": "k",
        "stream_options": {"include_usage": False, "future_flag": True},
    }
    req = ChatCompletionRequest.model_validate(body)
    assert req.messages[0].text() == "hi"
    assert not hasattr(req, "brand_new_param")
    assert "brand_new_param" not in req.model_dump()
    assert req.include_usage is False


def test_request_defaults_nulls_and_validation():
    req = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    assert req.model == "" and req.n == 1 and req.stream is False and req.stop_sequences == []
    assert req.include_usage is False and req.max_new_tokens is None

    # the SDK sends explicit nulls when the caller passes ``None``
    nulls = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "n": None, "stream": None, "stop": None}
    )
    assert nulls.n == 1 and nulls.stream is False and nulls.stop is None

    single_stop = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "stop": "x", "max_tokens": 5}
    )
    assert single_stop.stop_sequences == ["x"] and single_stop.max_new_tokens == 5

    for field, value in [("n", 0), ("max_tokens", -1), ("max_completion_tokens", -1), ("temperature", 3)]:
        with pytest.raises(ValidationError, match=field):
            ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], field: value})
    for field, value in [("max_tokens", "many"), ("messages", "hi"), ("stop", 3)]:
        with pytest.raises(ValidationError, match=field):
            ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}], field: value})
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m"})
    with pytest.raises(ValidationError, match="role"):
        ChatCompletionRequest.model_validate({"messages": [{"role": 7, "content": "hi"}]})
    with pytest.raises(ValidationError, match="role"):
        ChatCompletionRequest.model_validate({"messages": [{"content": "hi"}]})
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"messages": [{"role": "user", "content": [{"type": "video", "video": "x"}]}]}
        )


def test_custom_roles_and_zero_token_limits_are_the_apis_to_judge():
    # FastAPI's /docs page pre-fills this body; LitServe (and vLLM, for roles) accept it.
    messages = [{"role": "string", "content": "string"}]
    req = ChatCompletionRequest.model_validate(
        {"model": "", "messages": messages, "max_completion_tokens": 0, "stop": "string"}
    )
    assert req.messages[0].role == "string"
    assert req.max_completion_tokens == 0 and req.max_new_tokens == 0
    user = [{"role": "user", "content": "hi"}]
    assert ChatCompletionRequest.model_validate({"messages": user, "max_tokens": 0}).max_new_tokens == 0


def test_chat_message_is_user_constructible():
    msg = ChatMessage(role="assistant", content="hi")
    assert msg.content == "hi" and msg.tool_calls is None
    call = ToolCall(function=FunctionCall(name="f", arguments={"x": 1}))
    assert call.id.startswith("call_") and call.type == "function"
    assert json.loads(call.function.arguments) == {"x": 1}
    assert "index" not in roundtrip(call)  # only stream deltas carry an index


# ---------------------------------------------------------------------------------------------------------------------
# chat requests as produced by the real SDK
# ---------------------------------------------------------------------------------------------------------------------


def test_request_bodies_sent_by_the_sdk_parse():
    captured: List[Dict[str, Any]] = []

    def handler(request: Any) -> Any:
        captured.append(json.loads(request.content))
        msg = ChatMessage(role="assistant", content="ok")
        return json_response(ChatCompletionResponse(model="m", choices=[ChatCompletionResponseChoice(message=msg)]))

    client = make_client(handler)
    client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                ],
            },
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}],
        tool_choice="required",
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
        temperature=0.2,
        top_p=0.9,
        n=2,
        max_tokens=10,
        stop="STOP",
        seed=1,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        logprobs=True,
        top_logprobs=2,
        logit_bias={"50256": -100},
        user="u",
        metadata={"k": "v"},
        reasoning_effort="low",
        extra_body={"top_k": 5},
    )
    body = captured[0]
    assert body["top_k"] == 5  # an extension field the SDK forwards verbatim
    req = ChatCompletionRequest.model_validate(body)
    assert req.temperature == 0.2 and req.top_p == 0.9 and req.n == 2 and req.max_tokens == 10
    assert req.stop_sequences == ["STOP"] and req.seed == 1 and req.user == "u" and req.metadata == {"k": "v"}
    assert req.logprobs is True and req.top_logprobs == 2 and req.logit_bias == {"50256": -100}
    assert req.reasoning_effort == "low" and req.tool_choice == "required"
    assert req.tools[0].function.name == "f" and req.tools[0].function.description is None
    assert req.response_format.json_schema.schema_ == {"type": "object"}
    assert req.messages[1].content[1].image_url.detail == "low"
    assert req.stream is False

    client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    streamed = ChatCompletionRequest.model_validate(captured[1])
    assert streamed.stream is True and streamed.include_usage is True


# ---------------------------------------------------------------------------------------------------------------------
# chat replies round-tripped through the SDK's types
# ---------------------------------------------------------------------------------------------------------------------


def test_chat_completion_response_validates_as_sdk_type():
    resp = ChatCompletionResponse(
        model="my-model",
        choices=[ChatCompletionResponseChoice(index=0, message=ChatMessage(role="assistant", content="Hello!"))],
        usage=UsageInfo(prompt_tokens=5, completion_tokens=2),
        system_fingerprint="fp_1",
    )
    data = roundtrip(resp)
    assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
    assert data["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
    sdk = SDKChatCompletion.model_validate(data)
    assert sdk.choices[0].message.content == "Hello!"
    assert sdk.choices[0].message.role == "assistant"
    assert sdk.choices[0].finish_reason == "stop"
    assert sdk.usage.total_tokens == 7
    assert sdk.system_fingerprint == "fp_1"
    assert isinstance(sdk.created, int) and sdk.model == "my-model"


def test_chat_completion_with_tool_calls_through_client():
    reply = ChatCompletionResponse(
        model="m",
        choices=[
            ChatCompletionResponseChoice(
                message=ChatMessage(
                    role="assistant",
                    content=None,
                    tool_calls=[ToolCall(id="call_1", function=FunctionCall(name="get", arguments='{"a": 1}'))],
                ),
                finish_reason="tool_calls",
            )
        ],
    )
    client = make_client(lambda request: json_response(reply))
    out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert out.choices[0].finish_reason == "tool_calls"
    assert out.choices[0].message.content is None
    call = out.choices[0].message.tool_calls[0]
    assert call.id == "call_1" and call.type == "function"
    assert call.function.name == "get" and json.loads(call.function.arguments) == {"a": 1}
    assert out.usage.total_tokens == 0


def _stream_chunks(model: str = "m") -> List[ChatCompletionChunk]:
    cid = make_chat_completion_id()
    first = ChatCompletionChunk(
        id=cid, model=model, choices=[ChatCompletionStreamingChoice(delta=ChoiceDelta(role="assistant", content=""))]
    )
    words = [
        ChatCompletionChunk(id=cid, model=model, choices=[ChatCompletionStreamingChoice(delta=ChoiceDelta(content=w))])
        for w in ("Hel", "lo")
    ]
    tool = ChatCompletionChunk(
        id=cid,
        model=model,
        choices=[
            ChatCompletionStreamingChoice(
                delta=ChoiceDelta(tool_calls=[ToolCall(id="call_9", function=FunctionCall(name="f", arguments="{}"))])
            )
        ],
    )
    tool_cont = ChatCompletionChunk(
        id=cid,
        model=model,
        choices=[
            ChatCompletionStreamingChoice(
                delta=ChoiceDelta(
                    tool_calls=[ChoiceDeltaToolCall(index=0, function=ChoiceDeltaToolCallFunction(arguments=""))]
                )
            )
        ],
    )
    last = ChatCompletionChunk(id=cid, model=model, choices=[ChatCompletionStreamingChoice(finish_reason="stop")])
    usage = ChatCompletionChunk(id=cid, model=model, choices=[], usage=UsageInfo(prompt_tokens=3, completion_tokens=2))
    return [first, *words, tool, tool_cont, last, usage]


def test_chat_completion_chunks_validate_as_sdk_type():
    chunks = _stream_chunks()
    parsed = [SDKChatCompletionChunk.model_validate(roundtrip(c)) for c in chunks]
    assert all(p.object == "chat.completion.chunk" for p in parsed)
    assert len({p.id for p in parsed}) == 1
    assert parsed[0].choices[0].delta.role == "assistant"
    assert "".join(p.choices[0].delta.content or "" for p in parsed if p.choices) == "Hello"
    tool_delta = parsed[3].choices[0].delta.tool_calls[0]
    assert tool_delta.index == 0 and tool_delta.id == "call_9" and tool_delta.type == "function"
    assert tool_delta.function.name == "f"
    assert parsed[4].choices[0].delta.tool_calls[0].id is None
    assert parsed[5].choices[0].finish_reason == "stop"
    assert parsed[6].choices == [] and parsed[6].usage.total_tokens == 5
    assert all(p.usage is None for p in parsed[:-1])


def test_tool_call_delta_indexes_follow_position():
    delta = ChoiceDelta(
        tool_calls=[
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ToolCall(id="b", function=FunctionCall(name="g", arguments="{}")),
            ToolCall(index=7, id="c", function=FunctionCall(name="h", arguments="{}")),
        ]
    )
    assert [c.index for c in delta.tool_calls] == [0, 1, 7]


def test_stream_through_client():
    def handler(request: Any) -> Any:
        return sse_response([to_sse(c) for c in _stream_chunks()] + [SSE_DONE])

    client = make_client(handler)
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    received = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "Hello"
    assert received[-1].choices == [] and received[-1].usage.prompt_tokens == 3


def test_error_mid_stream_raises_api_error():
    error = ErrorResponse.from_status(500, "model exploded", code="internal")

    def handler(request: Any) -> Any:
        return sse_response([to_sse(_stream_chunks()[0]), to_sse(error), SSE_DONE])

    client = make_client(handler)
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert info.value.message == "model exploded"
    assert info.value.code == "internal" and info.value.type == "server_error"


def test_error_response_http_status():
    error = ErrorResponse.from_status(400, "messages is required", param="messages")
    assert roundtrip(error) == {
        "error": {
            "message": "messages is required",
            "type": "invalid_request_error",
            "param": "messages",
            "code": None,
        }
    }
    client = make_client(lambda request: json_response(error, status_code=400))
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=[])
    assert "messages is required" in str(info.value)
    assert info.value.param == "messages" and info.value.type == "invalid_request_error"
    assert ErrorResponse.from_status(404, "x").error.type == "not_found_error"
    assert ErrorResponse.from_status(503, "x").error.type == "server_error"


def test_model_list():
    models = ModelList(data=[ModelCard(id="my-model"), ModelCard(id="other", owned_by="me", created=123)])
    data = roundtrip(models)
    assert data["object"] == "list"
    for entry in data["data"]:
        sdk = Model.model_validate(entry)
        assert sdk.object == "model" and isinstance(sdk.created, int)

    client = make_client(lambda request: json_response(models))
    listed = client.models.list()
    assert [m.id for m in listed] == ["my-model", "other"]
    assert listed.data[1].owned_by == "me" and listed.data[1].created == 123


def test_sdk_validation_is_strict_enough_to_catch_wrong_shapes():
    """Guards the tests above: the SDK types do reject the mistakes we test against."""
    good = roundtrip(_stream_chunks()[3])
    bad_index = json.loads(json.dumps(good))
    del bad_index["choices"][0]["delta"]["tool_calls"][0]["index"]
    with pytest.raises(ValidationError):
        SDKChatCompletionChunk.model_validate(bad_index)
    with pytest.raises(ValidationError):
        SDKChatCompletionChunk.model_validate({**good, "object": "chat.completion"})
    resp = roundtrip(
        ChatCompletionResponse(
            model="m", choices=[ChatCompletionResponseChoice(message=ChatMessage(role="assistant", content="x"))]
        )
    )
    resp["choices"][0]["finish_reason"] = None
    with pytest.raises(ValidationError):
        SDKChatCompletion.model_validate(resp)


def test_usage_info_totals():
    assert UsageInfo(prompt_tokens=2, completion_tokens=3).total_tokens == 5
    assert UsageInfo(prompt_tokens=2, completion_tokens=3, total_tokens=9).total_tokens == 9
    assert UsageInfo().total_tokens == 0
    total = sum([UsageInfo(prompt_tokens=1, completion_tokens=1), UsageInfo(prompt_tokens=2, completion_tokens=5)])
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (3, 6, 9)


# ---------------------------------------------------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        ([1, 2, 3], [[1, 2, 3]]),
        ([[1, 2], [3]], [[1, 2], [3]]),
    ],
)
def test_embedding_request_inputs(payload: Any, expected: Any):
    req = EmbeddingRequest.model_validate({"input": payload, "model": "e", "unknown": 1})
    assert req.ensure_list() == expected
    assert req.encoding_format == "float" and req.dimensions is None
    assert req.is_tokens == (not isinstance(expected[0], str))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "empty string"),
        ([], "empty list"),
        (["ok", ""], "input[1]"),
        ([[1], []], "input[1]"),
        (["a", 1], None),
        ([1.5], None),
    ],
)
def test_embedding_request_rejects_bad_input(payload: Any, message: Any):
    with pytest.raises(ValidationError) as info:
        EmbeddingRequest.model_validate({"input": payload, "model": "e"})
    if message:
        assert message in str(info.value)


def test_embedding_request_options():
    req = EmbeddingRequest.model_validate(
        {"input": "x", "model": "e", "encoding_format": "base64", "dimensions": 8, "user": "u"}
    )
    assert req.encoding_format == "base64" and req.dimensions == 8 and req.user == "u"
    assert EmbeddingRequest.model_validate({"input": "x", "encoding_format": None}).encoding_format == "float"
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate({"input": "x", "dimensions": 0})
    with pytest.raises(ValidationError):
        EmbeddingRequest.model_validate({"input": "x", "encoding_format": "int8"})


def test_embedding_response_validates_as_sdk_type():
    resp = EmbeddingResponse(
        data=[Embedding(index=0, embedding=[0.1, 0.2]), Embedding(index=1, embedding=[0.3, 0.4])],
        model="e",
        usage=EmbeddingUsageInfo(prompt_tokens=4),
    )
    data = roundtrip(resp)
    assert data["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    sdk = CreateEmbeddingResponse.model_validate(data)
    assert sdk.object == "list" and sdk.model == "e"
    assert [d.object for d in sdk.data] == ["embedding", "embedding"]
    assert sdk.data[1].embedding == [0.3, 0.4] and sdk.data[1].index == 1


VECTOR = [0.5, -1.25, 3.0, 1e-3, 0.1, -7.77]


def test_base64_matches_openai_layout():
    encoded = encode_embedding_base64(VECTOR)
    raw = base64.b64decode(encoded)
    assert len(raw) == 4 * len(VECTOR)
    assert list(struct.unpack(f"<{len(VECTOR)}f", raw)) == float32(VECTOR)
    assert decode_embedding_base64(encoded) == float32(VECTOR)


def test_base64_decodes_with_sdk_logic():
    encoded = encode_embedding_base64(VECTOR)
    # the SDK's two decoding paths for base64 embeddings
    assert array.array("f", base64.b64decode(encoded)).tolist() == float32(VECTOR)
    np = pytest.importorskip("numpy")
    assert np.frombuffer(base64.b64decode(encoded), dtype="float32").tolist() == float32(VECTOR)
    # numpy input is accepted too (any dtype, any memory layout)
    assert encode_embedding_base64(np.array(VECTOR, dtype=np.float64)) == encoded
    assert encode_embedding_base64(np.array([VECTOR], dtype=">f4")) == encoded


@pytest.mark.parametrize("use_numpy", [True, False])
def test_base64_roundtrip_through_sdk_client(monkeypatch: Any, use_numpy: bool):
    """The SDK asks for base64 by default and decodes it itself; our encoding must come back as the same floats."""
    try:
        from openai.lib._parsing import _embeddings as sdk_embeddings
    except ImportError:  # pragma: no cover - private module moved in another SDK version
        sdk_embeddings = None
    if sdk_embeddings is not None and hasattr(sdk_embeddings, "has_numpy"):
        monkeypatch.setattr(sdk_embeddings, "has_numpy", lambda: use_numpy)
    elif not use_numpy:
        pytest.skip("cannot force the SDK's non-numpy decoding path in this SDK version")

    vectors = [VECTOR, [v * 2 for v in VECTOR]]
    seen: List[EmbeddingRequest] = []

    def handler(request: Any) -> Any:
        req = EmbeddingRequest.model_validate(json.loads(request.content))
        seen.append(req)
        resp = EmbeddingResponse.from_vectors(
            vectors[: len(req.ensure_list())], model=req.model, encoding_format=req.encoding_format, prompt_tokens=6
        )
        return json_response(resp)

    # Default (non-strict) client: the SDK's own ``Embedding.embedding`` is typed ``List[float]``, so its strict
    # validation mode would reject any base64 string before its post-parser gets to decode it.
    client = make_client(handler, strict=False)
    out = client.embeddings.create(model="e", input=["a", "b"])
    assert seen[0].encoding_format == "base64"  # the SDK's default
    assert isinstance(
        json.loads(EmbeddingResponse.from_vectors(vectors, "e", "base64").model_dump_json())["data"][0]["embedding"],
        str,
    )
    assert [d.embedding for d in out.data] == [float32(v) for v in vectors]
    assert out.usage.prompt_tokens == 6 and out.usage.total_tokens == 6

    strict_client = make_client(handler)  # float replies also pass the SDK's strict validation
    explicit = strict_client.embeddings.create(model="e", input="a", encoding_format="float", dimensions=3)
    assert seen[1].encoding_format == "float" and seen[1].dimensions == 3
    assert explicit.data[0].embedding == VECTOR


def test_embedding_accepts_array_like():
    np = pytest.importorskip("numpy")
    emb = Embedding(index=0, embedding=np.array([0.5, 0.25], dtype=np.float32))
    assert emb.embedding == [0.5, 0.25]
    assert CreateEmbeddingResponse.model_validate(
        roundtrip(EmbeddingResponse.from_vectors(np.ones((2, 3)), model="e"))
    ).data[1].embedding == [1.0, 1.0, 1.0]
