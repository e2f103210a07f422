"""POST /v1/embeddings with the official openai SDK."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from tests.apps_specs import TOY_EMBEDDING_SIZE, toy_embedding

EMBED = "tests.apps_specs:ToyEmbedAPI"
SPEC = {"__spec__": "openai_embedding"}


def client_for(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=30)


def test_float_embeddings_for_a_list_of_strings(serve):
    server = serve(EMBED, spec=SPEC)
    result = client_for(server).embeddings.create(model="toy", input=["hello world", "bye"], encoding_format="float")
    assert result.object == "list" and result.model == "toy"
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx(toy_embedding("hello world"))
    assert result.usage.prompt_tokens == 3 and result.usage.total_tokens == 3


def test_base64_embeddings_are_the_sdk_default_and_decode_to_the_same_vector(serve):
    server = serve(EMBED, spec=SPEC)
    result = client_for(server).embeddings.create(model="toy", input="hello world")
    assert len(result.data) == 1
    assert result.data[0].embedding == pytest.approx(toy_embedding("hello world"), abs=1e-6)
    raw = httpx.post(f"{server.url}/v1/embeddings", json={"input": "hi", "encoding_format": "base64"}).json()
    assert isinstance(raw["data"][0]["embedding"], str)


def test_token_id_inputs_and_dimensions(serve):
    server = serve(EMBED, spec=SPEC)
    result = client_for(server).embeddings.create(
        model="toy", input=[[1, 2, 3], [4, 5]], encoding_format="float", dimensions=4
    )
    assert len(result.data) == 2
    assert len(result.data[0].embedding) == 4
    assert sum(v * v for v in result.data[0].embedding) == pytest.approx(1.0)


def test_batching_across_concurrent_requests(serve):
    server = serve(EMBED, spec=SPEC, max_batch_size=8, batch_timeout=0.5)

    async def one(client: openai.AsyncOpenAI, i: int) -> list:
        texts = [f"text {i} {j}" for j in range(i % 3 + 1)]
        result = await client.embeddings.create(model="toy", input=texts, encoding_format="float")
        return [(text, d.embedding) for text, d in zip(texts, result.data)]

    async def main() -> list:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client:
            return await asyncio.gather(*(one(client, i) for i in range(12)))

    for pairs in asyncio.run(main()):
        for text, vector in pairs:
            assert vector == pytest.approx(toy_embedding(text)), "each request gets its own vectors back"
            assert len(vector) == TOY_EMBEDDING_SIZE


def test_bad_embedding_requests_raise_typed_errors(serve):
    server = serve(EMBED, spec=SPEC)
    client = client_for(server)
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.embeddings.create(model="toy", input="")
    assert "input" in info.value.body["message"]
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="toy", input=["ok"], encoding_format="float", dimensions=0)


def test_chat_and_embeddings_on_one_server(serve):
    server = serve(
        ["tests.apps_specs:ChatAPI", "tests.apps_specs:EmbedAPI"],
    )
    client = client_for(server)
    assert {m.id for m in client.models.list().data} == {"ChatAPI", "EmbedAPI"}
    assert client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    assert len(client.embeddings.create(model="m", input="x", encoding_format="float").data) == 1
