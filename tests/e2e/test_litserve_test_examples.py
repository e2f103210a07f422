"""``litserve.test_examples`` serves every class LitServe 0.2.19 ships there, with LitServe's answers."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

import litserve as ls

CHAT = "litserve.test_examples.openai_spec_example:"
EMBED = "litserve.test_examples.openai_embedding_spec_example:"
OPENAI = {"__spec__": "openai"}
MESSAGES = [{"role": "user", "content": "How are you?"}]
SUM_ANSWER = "10 + 6 is equal to 16."
BATCH_ANSWER = "Hi! It's nice to meet you. Is there something I can help you with or would you like to chat? "


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="lit", max_retries=0, timeout=30)


def streamed_contents(client: openai.OpenAI) -> list:
    stream = client.chat.completions.create(model="lit", messages=MESSAGES, stream=True)
    return [chunk.choices[0].delta.content for chunk in stream if chunk.choices]


def test_import_litserve_is_enough_to_reach_test_examples():
    names = {"SimpleLitAPI", "SimpleBatchedAPI", "SimpleTorchAPI", "SimpleStreamAPI", "TestAPI"}
    names |= {"TestAPIWithCustomEncode", "TestAPIWithToolCalls", "TestAPIWithStructuredOutput", "OpenAIBatchContext"}
    assert all(issubclass(getattr(ls.test_examples, name), ls.LitAPI) for name in names)


def test_simple_examples_on_one_server(serve):
    server = serve(
        [
            "litserve.test_examples:SimpleLitAPI",
            "litserve.test_examples:SimpleBatchedAPI",
            "litserve.test_examples:SimpleTorchAPI",
            "litserve.test_examples:SimpleStreamAPI",
        ],
        api_kwargs=[
            {"api_path": "/plain"},
            {"api_path": "/batched", "max_batch_size": 4, "batch_timeout": 0.05},
            {"api_path": "/torch"},
            {"api_path": "/stream", "stream": True},
        ],
    )
    assert httpx.post(f"{server.url}/plain", json={"input": 4.0}).json() == {"output": 16.0}
    assert httpx.post(f"{server.url}/batched", json={"input": 4.0}).json() == {"output": 16.0}
    assert httpx.post(f"{server.url}/torch", json={"input": 4.0}).json() == {"output": 9.0}
    lines = httpx.post(f"{server.url}/stream", json={"input": "Hello"}).text.splitlines()
    assert [json.loads(line) for line in lines] == [{"output": f"{i}: Hello"} for i in range(3)]


def test_test_api_answers_in_one_piece(serve):
    client = client_for(serve(CHAT + "TestAPI", spec=OPENAI))
    completion = client.chat.completions.create(model="lit", messages=MESSAGES)
    assert completion.choices[0].message.content == "This is a generated output"
    assert streamed_contents(client) == ["This is a generated output", None]


def test_custom_encode_and_structured_output(serve):
    custom = client_for(serve(CHAT + "TestAPIWithCustomEncode", spec=OPENAI))
    reply = custom.chat.completions.create(model="lit", messages=MESSAGES)
    assert reply.choices[0].message.content == "This is a custom encoded output"
    structured = client_for(serve(CHAT + "TestAPIWithStructuredOutput", spec=OPENAI))
    content = structured.chat.completions.create(model="lit", messages=MESSAGES).choices[0].message.content
    assert json.loads(content) == {"name": "Science Fair", "date": "Friday", "participants": ["Alice", "Bob"]}


def test_tool_calls_example(serve):
    client = client_for(serve(CHAT + "TestAPIWithToolCalls", spec=OPENAI))
    message = client.chat.completions.create(model="lit", messages=MESSAGES).choices[0].message
    assert message.content == ""
    assert message.tool_calls[0].function.name == "function_1"
    assert json.loads(message.tool_calls[0].function.arguments) == {"arg_1": "arg_1_value"}


def test_batch_context_example(serve):
    client = client_for(serve(CHAT + "OpenAIBatchContext", spec=OPENAI, max_batch_size=2, batch_timeout=0.05))
    assert client.chat.completions.create(model="lit", messages=MESSAGES).choices[0].message.content == BATCH_ANSWER
    assert "".join(streamed_contents(client)[:-1]) == BATCH_ANSWER


@pytest.mark.parametrize(
    "name, limits",
    [
        ("OpenAIWithUsage", {}),
        ("OpenAIWithUsageEncodeResponse", {}),
        ("OpenAIBatchingWithUsage", {"max_batch_size": 2, "batch_timeout": 0.05}),
    ],
)
def test_usage_examples(serve, name, limits):
    client = client_for(serve(CHAT + name, spec=OPENAI, **limits))
    completion = client.chat.completions.create(model="lit", messages=MESSAGES)
    assert completion.choices[0].message.content == SUM_ANSWER
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (25, 10, 35)


@pytest.mark.parametrize("name", ["TestEmbedAPI", "TestEmbedAPIWithUsage"])
def test_embedding_examples(serve, name):
    client = client_for(serve(EMBED + name, spec={"__spec__": "openai_embedding"}))
    one = client.embeddings.create(model="lit", input="The food was delicious", encoding_format="float")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 768
    two = client.embeddings.create(model="lit", input=["a", "b"], encoding_format="float")
    assert [len(d.embedding) for d in two.data] == [768, 768]
    expected_tokens = 10 if name == "TestEmbedAPIWithUsage" else 0
    assert two.usage.prompt_tokens == expected_tokens


def test_embedding_example_missing_the_embeddings_key_is_a_server_error(serve):
    client = client_for(serve(EMBED + "TestEmbedAPIWithMissingEmbeddings", spec={"__spec__": "openai_embedding"}))
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="lit", input="x", encoding_format="float")


@pytest.mark.parametrize("name", ["TestEmbedAPIWithYieldPredict", "TestEmbedAPIWithYieldEncodeResponse"])
def test_streaming_embedding_examples_are_refused(serve, name):
    server = serve(EMBED + name, spec={"__spec__": "openai_embedding"}, wait=False)
    assert server.wait_exit() != 0
    assert "embedding" in server.output().lower()
