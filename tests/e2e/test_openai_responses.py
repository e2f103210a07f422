"""POST /v1/responses (OpenAI's Responses API) through the official SDK's ``client.responses.create``."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.apps_specs import GENERATED_OUTPUT

OPENAI = {"__spec__": "openai"}


def client_for(server, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=api_key, max_retries=0, timeout=30)


@pytest.fixture
def words_server(serve):
    return serve("tests.apps_specs:UsageChatAPI", spec=OPENAI)


def test_plain_response(words_server):
    response = client_for(words_server).responses.create(
        model="tiny", input="Tell me a story", instructions="Be brief.", metadata={"team": "search"}
    )
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "tiny"
    assert response.output_text == GENERATED_OUTPUT
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].text == GENERATED_OUTPUT
    assert response.metadata == {"team": "search"} and response.instructions == "Be brief."
    # The hooks saw the chat the request means: instructions as a system message, then the input (6 words).
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (6, 5, 11)


def test_streamed_response_events(words_server):
    stream = client_for(words_server).responses.create(model="tiny", input="Hello there", stream=True)
    events = list(stream)
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 5 and "".join(deltas) == GENERATED_OUTPUT, "one delta per item, in order"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    done = events[-1].response
    assert done.status == "completed" and done.output_text == GENERATED_OUTPUT and done.usage.output_tokens == 5


def test_message_list_input_and_the_sdk_stream_helper(serve):
    server = serve("tests.apps:ContextEchoChatAPI", spec=OPENAI)
    response = client_for(server).responses.create(
        model="m",
        instructions="Answer in French.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": "Salut"},
            {"role": "user", "content": "How are you?"},
        ],
        max_output_tokens=12,
        temperature=0.2,
    )
    seen = json.loads(response.output_text)
    assert [m["role"] for m in seen["messages"]] == ["system", "user", "assistant", "user"]
    assert seen["messages"][1]["content"] == [{"type": "text", "text": "Hi"}]
    assert seen["max_tokens"] == 12 and seen["temperature"] == 0.2
    with client_for(server).responses.stream(model="m", input="x") as stream:
        final = stream.get_final_response()
    assert json.loads(final.output_text)["messages"] == [{"role": "user", "content": "x"}]


def test_function_calls(serve):
    server = serve("tests.apps_specs:ToolCallChatAPI", spec=OPENAI)
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    client = client_for(server)
    response = client.responses.create(model="m", input="Weather in Paris?", tools=tools)
    call = [item for item in response.output if item.type == "function_call"][0]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == "call_1"
    events = list(client.responses.create(model="m", input="Weather?", tools=tools, stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == {"city": "Paris"}
    assert events[-1].type == "response.completed"


def test_bad_requests_get_openai_errors(words_server):
    client = client_for(words_server)
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model="m", input="x", previous_response_id="resp_123")
    assert "previous_response_id" in info.value.message
    with pytest.raises(openai.UnprocessableEntityError):
        client.responses.create(model="m", input="x", temperature=7)
    no_role = httpx.post(f"{words_server.url}/v1/responses", json={"input": [{"content": "hi"}]})
    assert no_role.status_code == 400 and "input[0]: a message needs a role" in no_role.json()["error"]["message"]
    unknown = httpx.post(f"{words_server.url}/v1/responses", json={"input": [{"type": "web_search_call"}]})
    assert unknown.status_code == 400 and "web_search_call" in unknown.json()["error"]["message"]
    missing = httpx.post(f"{words_server.url}/v1/responses", json={"model": "m"})
    assert missing.status_code == 422 and "input" in missing.json()["error"]["message"]


def test_the_route_is_documented(words_server):
    schema = httpx.get(f"{words_server.url}/openapi.json").json()
    body = schema["paths"]["/v1/responses"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/ResponsesRequest")
    assert "input" in schema["components"]["schemas"]["ResponsesRequest"]["required"]


def test_api_key_applies(serve):
    server = serve("tests.apps_specs:WordsChatAPI", spec=OPENAI, env={"LIT_SERVER_API_KEY": "sk-r"})
    with pytest.raises(openai.AuthenticationError):
        client_for(server, api_key="wrong").responses.create(model="m", input="x")
    assert client_for(server, api_key="sk-r").responses.create(model="m", input="x").output_text == GENERATED_OUTPUT


def test_a_failure_mid_stream_makes_the_sdk_raise_and_leaks_no_traceback(serve):
    server = serve("tests.apps_specs:FailsMidStreamChatAPI", spec=OPENAI)
    client = client_for(server)
    seen = []
    with pytest.raises(openai.APIError) as info:
        for event in client.responses.create(model="m", input="x", stream=True):
            seen.append(event.type)
    assert "response.output_text.delta" in seen, "the events before the failure arrived"
    assert "Traceback" not in str(info.value) and "the model broke" not in str(info.value)
    with pytest.raises(openai.InternalServerError):
        client.responses.create(model="m", input="x")
