"""The official openai SDK, sync and async, against a real server with OpenAISpec."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from tests.apps_specs import GENERATED_OUTPUT

MESSAGES = [{"role": "user", "content": "Hello there"}]


def client_for(server, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=30)


def async_client_for(server, api_key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.fixture
def chat_server(serve):
    return serve("litserve.test_examples.openai_spec_example:TestAPI", spec={"__spec__": "openai"})


def test_plain_chat_completion(chat_server):
    completion = client_for(chat_server).chat.completions.create(model="my-model", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.model == "my-model", "the requested model is echoed"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == GENERATED_OUTPUT
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_chat_completion(chat_server):
    stream = client_for(chat_server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == GENERATED_OUTPUT
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1


def test_async_client_and_32_concurrent_streams(chat_server):
    async def one_stream(client: openai.AsyncOpenAI, i: int) -> str:
        stream = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"request {i}"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def main() -> list:
        async with async_client_for(chat_server) as client:
            plain = await client.chat.completions.create(model="m", messages=MESSAGES)
            assert plain.choices[0].message.content == GENERATED_OUTPUT
            return await asyncio.gather(*(one_stream(client, i) for i in range(32)))

    assert asyncio.run(main()) == [GENERATED_OUTPUT] * 32


def test_usage_is_reported_in_stream_when_asked(serve):
    server = serve("tests.apps_specs:UsageChatAPI", spec={"__spec__": "openai"})
    stream = client_for(server).chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage.prompt_tokens == 2 and usage.completion_tokens == 5 and usage.total_tokens == 7
    plain = client_for(server).chat.completions.create(model="m", messages=MESSAGES)
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens, plain.usage.total_tokens) == (2, 5, 7)


def test_length_finish_reason_when_max_tokens_is_reached(serve):
    server = serve("tests.apps:LengthLimitedChatAPI", spec={"__spec__": "openai"})
    client = client_for(server)
    short = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == "t0 t1 t2 "
    full = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=50)
    assert full.choices[0].finish_reason == "stop"
    unlimited = client.chat.completions.create(model="m", messages=MESSAGES, max_completion_tokens=0)
    assert unlimited.choices[0].finish_reason == "stop", "0 is the API's to interpret, not a limit of 0 tokens"
    assert unlimited.choices[0].message.content == "t0 t1 t2 t3 t4 "


def test_tool_calls_plain_and_streamed(serve):
    server = serve("tests.apps_specs:ToolCallChatAPI", spec={"__spec__": "openai"})
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    client = client_for(server)
    completion = client.chat.completions.create(model="m", messages=MESSAGES, tools=tools)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(client.chat.completions.create(model="m", messages=MESSAGES, tools=tools, stream=True))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_request_options_reach_the_context(serve):
    server = serve("tests.apps:ContextEchoChatAPI", spec={"__spec__": "openai"})
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    completion = client_for(server).chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
        ],
        temperature=0.2,
        max_tokens=12,
        metadata={"team": "search"},
        response_format={"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": True}},
        extra_body={"some_future_field": True},
    )
    seen = json.loads(completion.choices[0].message.content)
    assert seen["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": schema, "strict": True},
    }
    assert seen["temperature"] == 0.2 and seen["max_tokens"] == 12 and seen["metadata"] == {"team": "search"}
    assert seen["messages"][1]["content"][1]["image_url"]["url"].startswith("data:image/png")


def test_the_body_prefilled_by_the_docs_page_reaches_the_api_as_given(serve):
    # FastAPI's /docs page pre-fills this body; LitServe's own e2e test posts it and expects 200.
    body = {
        "model": "",
        "messages": [{"role": "string", "content": "string"}],
        "temperature": 0.7,
        "top_p": 1,
        "n": 1,
        "max_completion_tokens": 0,
        "stop": "string",
        "stream": False,
        "presence_penalty": 0,
        "frequency_penalty": 0,
        "user": "string",
    }
    server = serve("tests.apps:ContextEchoChatAPI", spec={"__spec__": "openai"})
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 200, response.text
    seen = json.loads(response.json()["choices"][0]["message"]["content"])
    assert seen["messages"] == [{"role": "string", "content": "string"}], "a custom role reaches decode_request"
    assert seen["max_completion_tokens"] == 0 and seen["max_tokens"] is None and seen["stop"] == "string"
    tool_role = client_for(server).chat.completions.create(model="m", messages=[{"role": "ipython", "content": "4"}])
    assert json.loads(tool_role.choices[0].message.content)["messages"][0]["role"] == "ipython"


def test_n_choices(chat_server):
    completion = client_for(chat_server).chat.completions.create(model="m", messages=MESSAGES, n=3)
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.message.content == GENERATED_OUTPUT for c in completion.choices)
    chunks = list(client_for(chat_server).chat.completions.create(model="m", messages=MESSAGES, n=2, stream=True))
    by_choice: dict = {}
    for chunk in chunks:
        for choice in chunk.choices:
            by_choice[choice.index] = by_choice.get(choice.index, "") + (choice.delta.content or "")
    assert by_choice == {0: GENERATED_OUTPUT, 1: GENERATED_OUTPUT}


def test_batching_with_the_spec(serve):
    server = serve("tests.apps:BatchedChatAPI", spec={"__spec__": "openai"}, max_batch_size=4, batch_timeout=1.0)

    async def ask(client: openai.AsyncOpenAI, word: str) -> str:
        completion = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": word}])
        return completion.choices[0].message.content

    async def main() -> list:
        async with async_client_for(server) as client:
            return await asyncio.gather(*(ask(client, w) for w in ["a", "b", "c", "d"]))

    answers = asyncio.run(main())
    for word, answer in zip("abcd", answers):
        sizes = {part.split(":")[0] for part in answer.split()}
        assert answer.split() == [f"{next(iter(sizes))}:{word}:{step}" for step in range(3)]
    assert any(answer.startswith("4:") for answer in answers), answers


def test_models_are_listed(chat_server):
    client = client_for(chat_server)
    models = client.models.list()
    assert [m.id for m in models.data] == ["TestAPI"]
    assert client.models.retrieve("TestAPI").id == "TestAPI"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-17")
    assert info.value.code == "model_not_found" and info.value.type == "invalid_request_error"
    assert "gpt-17" in info.value.message


def test_model_name_is_configurable(serve):
    server = serve(
        "litserve.test_examples.openai_spec_example:TestAPI", spec={"__spec__": "openai", "model_name": "smol"}
    )
    assert [m.id for m in client_for(server).models.list().data] == ["smol"]
    assert client_for(server).chat.completions.create(messages=MESSAGES, model="").model == "smol"


def test_api_key_with_the_sdk(serve):
    server = serve(
        "litserve.test_examples.openai_spec_example:TestAPI",
        spec={"__spec__": "openai"},
        env={"LIT_SERVER_API_KEY": "sk-test"},
    )
    with pytest.raises(openai.AuthenticationError) as info:
        client_for(server, api_key="wrong").chat.completions.create(model="m", messages=MESSAGES)
    assert "API key" in info.value.message
    with pytest.raises(openai.AuthenticationError):
        client_for(server, api_key="wrong").models.list()
    ok = client_for(server, api_key="sk-test").chat.completions.create(model="m", messages=MESSAGES)
    assert ok.choices[0].message.content == GENERATED_OUTPUT
    assert (
        httpx.post(
            f"{server.url}/v1/chat/completions", json={"messages": MESSAGES}, headers={"X-API-Key": "sk-test"}
        ).status_code
        == 200
    )


def test_bad_requests_raise_the_sdks_typed_errors(chat_server):
    client = client_for(chat_server)
    # Any string is a role the API may use; what no API could use is refused in OpenAI's error shape.
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="m", messages=[{"role": 7, "content": "hi"}])
    assert info.value.body["type"] == "invalid_request_error"
    assert "messages" in info.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="m", messages=MESSAGES, n=0)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=-1)
    assert "max_tokens" in info.value.body["message"]
    for body in ({"model": "m"}, {"messages": "hi"}, {"messages": MESSAGES, "max_tokens": "many"}):
        refused = httpx.post(f"{chat_server.url}/v1/chat/completions", json=body, timeout=30)
        assert refused.status_code == 422, body
        assert set(refused.json()["error"]) == {"message", "type", "param", "code"}

    raw = httpx.post(
        f"{chat_server.url}/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert raw.status_code == 400
    error = raw.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "not valid JSON" in error["message"]


def test_error_mid_stream_raises_in_the_sdk(serve):
    server = serve("tests.apps:FailingChatAPI", spec={"__spec__": "openai"})
    stream = client_for(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["partial"]
    assert "predict failed (RuntimeError)" in str(info.value)
    assert "out of memory" not in str(info.value)
    plain = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": MESSAGES})
    assert plain.status_code == 500 and plain.json()["error"]["type"] == "server_error"


def test_sse_wire_format_line_by_line(serve):
    chat_server = serve("tests.apps_specs:WordsChatAPI", spec={"__spec__": "openai"})
    body = {"model": "m", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{chat_server.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        raw = response.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "", "the stream ends with a blank line after the last event"
    events = events[:-1]
    assert all(event.startswith("data: ") and "\n" not in event for event in events)
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(event[len("data: ") :]) for event in events[:-1]]
    for payload in payloads:
        assert payload["object"] == "chat.completion.chunk"
        assert set(payload) >= {"id", "created", "model", "choices"}
    content_chunks = [p for p in payloads if p["choices"] and p["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == len(GENERATED_OUTPUT.split(" ")), "one event per item, flushed separately"
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["total_tokens"] >= 1


def test_a_worker_that_dies_is_reported_in_openai_error_shape(serve):
    server = serve("tests.apps_specs:CrashingChatAPI", spec={"__spec__": "openai"})
    client = client_for(server)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "crash"}])
    assert info.value.status_code == 503
    assert "stopped unexpectedly" in info.value.body["message"]
    # The worker is restarted and the route serves again.
    server.wait_ready()
    reply = client.chat.completions.create(model="m", messages=MESSAGES)
    assert reply.choices[0].message.content == GENERATED_OUTPUT


def test_a_worker_that_dies_mid_stream_ends_it_with_an_openai_error_event(serve):
    import os
    import signal

    server = serve("tests.apps_specs:PidThenStallChatAPI", spec={"__spec__": "openai"})
    stream = client_for(server).chat.completions.create(model="m", messages=MESSAGES, stream=True)
    first = next(iter(stream))
    os.kill(int(first.choices[0].delta.content), signal.SIGKILL)
    with pytest.raises(openai.APIError, match="stopped unexpectedly"):
        for _ in stream:
            pass
