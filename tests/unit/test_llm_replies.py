"""The LLM routes' request mapping and wire formats, fed with plain token events (no model, no server)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from litserve.llm.engine import TokenEvent
from litserve.llm.replies import ChatReply, CompletionReply, GenerateReply, GenerateStreamReply
from litserve.llm.requests import ChatRequest, CompletionRequest, GenerateRequest


def events(texts, reason="length"):
    return [
        TokenEvent(
            uid="u",
            token_id=10 + i,
            text=text,
            logprob=-0.5,
            special=False,
            finished=i == len(texts) - 1,
            finish_reason=reason if i == len(texts) - 1 else None,
            prompt_tokens=4,
            output_tokens=i + 1,
        )
        for i, text in enumerate(texts)
    ]


def sse_payloads(data: bytes) -> list:
    chunks = [chunk for chunk in data.split(b"\n\n") if chunk]
    return [chunk[len(b"data:") :].strip() for chunk in chunks]


def test_generate_answers_once_with_lightllm_fields():
    reply = GenerateReply(GenerateRequest(inputs="hi"), "m")
    sent = [reply.on_token(0, event) for event in events(["a", "", "bc"])]
    assert sent[:2] == [b"", b""]
    assert json.loads(sent[2]) == {
        "generated_text": ["abc"],
        "count_output_tokens": 3,
        "finish_reason": "length",
        "prompt_tokens": 4,
    }


def test_generate_stream_sends_one_event_per_token_and_the_full_text_last():
    reply = GenerateStreamReply(GenerateRequest(inputs="hi"), "m")
    sent = [reply.on_token(0, event) for event in events(["a", "", "bc"], reason="stop")]
    assert all(chunk.startswith(b"data:{") and chunk.endswith(b"\n\n") for chunk in sent)
    first, middle, last = (json.loads(chunk[len(b"data:") :]) for chunk in sent)
    assert first == {
        "token": {"id": 10, "text": "a", "logprob": -0.5, "special": False},
        "generated_text": None,
        "finished": False,
        "finish_reason": None,
    }
    assert middle["token"]["text"] == "" and middle["finished"] is False
    assert last["generated_text"] == "abc" and last["finished"] is True and last["finish_reason"] == "stop"


def test_chat_stream_opens_with_the_role_skips_empty_deltas_and_ends_with_usage_and_done():
    request = ChatRequest(
        messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    reply = ChatReply(request, "tiny")
    data = b"".join(reply.on_token(0, event) for event in events(["", "x", "", "y"]))
    payloads = sse_payloads(data)
    assert payloads[-1] == b"[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "x"}, {"content": "y"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    usage = {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    usage["prompt_tokens_details"] = {"cached_tokens": 0}
    assert chunks[-1]["usage"] == usage
    assert {chunk["model"] for chunk in chunks} == {"tiny"}


def test_completion_without_stream_is_one_text_completion():
    reply = CompletionReply(CompletionRequest(prompt=[1, 2, 3], max_tokens=2, model="named"), "tiny")
    body = json.loads(b"".join(reply.on_token(0, event) for event in events(["a", "b"])))
    assert body["object"] == "text_completion" and body["model"] == "named"
    assert body["choices"] == [
        {"index": 0, "text": "ab", "logprobs": None, "finish_reason": "length", "stop_reason": None}
    ]
    assert body["usage"]["completion_tokens"] == 2


def test_sampling_parameters_follow_each_api():
    assert GenerateRequest(inputs="x").sampling_params().greedy  # LightLLM: greedy unless do_sample
    assert not CompletionRequest(prompt="x").sampling_params().greedy  # OpenAI: samples at temperature 1
    assert CompletionRequest(prompt="x", temperature=0).sampling_params().greedy
    params = GenerateRequest(inputs="x", parameters={"stop_sequences": "END", "seed": 3}).sampling_params()
    assert params.stop_sequences == ["END"] and params.seed == 3
    with pytest.raises(ValueError, match="n must be an integer from 1 to 128"):
        CompletionRequest(prompt="x", n=0).sampling_params()
    with pytest.raises(ValueError, match="top_p"):
        GenerateRequest(inputs="x", parameters={"top_p": 0}).sampling_params()
    with pytest.raises(ValidationError):
        GenerateRequest(inputs="x", parameters={"max_tokens": 3})  # a typo is rejected, not ignored


def test_llm_chat_stays_strict_where_openaispec_lets_the_api_decide():
    # The chat template is written for OpenAI's roles, and the engine generates at least one token.
    ok = ChatRequest(messages=[{"role": "developer", "content": "hi"}], max_completion_tokens=1)
    assert ok.sampling_params().max_new_tokens == 1
    for body in (
        {"messages": [{"role": "string", "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 0},
    ):
        with pytest.raises(ValidationError):
            ChatRequest.model_validate(body)
