"""What vLLM users rely on, through the openai SDK against one real `litserve llm` server on a seeded model:
structured outputs, logprobs (against transformers' own log-softmax), n, tool calls, tokenizer routes, stop
handling, echo, the scheduler-facing metrics."""

from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

import httpx
import pytest

from tests.conftest import start_server, wait_for

pytest.importorskip("transformers")
pytest.importorskip("llguidance")

import jsonschema  # noqa: E402
import openai  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from litserve.llm.testing import build_tiny_model  # noqa: E402

pytestmark = pytest.mark.timeout(900)  # the shared 2-core machine can be slow; this only catches hangs

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "email": {"type": "string", "format": "email"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
            "required": ["city", "zip"],
        },
    },
    "required": ["name", "age", "address"],
}
POINTS = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"x": {"type": "number"}, "label": {"enum": ["a", "b", "c"]}, "ok": {"type": "boolean"}},
        "required": ["x", "label"],
        "additionalProperties": False,
    },
    "minItems": 1,
}
ANY_OBJECT = {"type": "object"}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 24}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}
TOOLS = [WEATHER, ADD]
SCHEMAS = {"get_weather": WEATHER["function"]["parameters"], "add": ADD["function"]["parameters"]}
USER = [{"role": "user", "content": "Tell me about the weather."}]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_model(str(tmp_path_factory.mktemp("models") / "tiny-llama"), arch="llama", seed=5)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    kwargs = {"model_dir": model_dir, "prefill_chunk_tokens": 32, "model_name": "tiny"}
    running = start_server(
        tmp_path_factory.mktemp("llm"), "litserve.llm:LLMAPI", api_kwargs=kwargs, accelerator="cpu", timeout=300
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def reference(model_dir):
    torch.set_num_threads(1)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


def outside_strings(text: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def assert_valid_json(text: str, schema: Dict[str, Any]) -> Any:
    value = json.loads(text)  # strict: no control characters inside strings, nothing after the value
    jsonschema.validate(value, schema)
    assert not re.search(r"\s", outside_strings(text)), f"whitespace between JSON tokens: {text!r}"
    return value


def chat_json(client, schema, seed: int, max_tokens: int = 120) -> str:
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": f"Describe item {seed} as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "item", "schema": schema}},
        temperature=1.0,
        seed=seed,
        max_tokens=max_tokens,
    )
    assert reply.choices[0].finish_reason == "stop", reply.choices[0]
    return reply.choices[0].message.content


def test_json_schema_replies_parse_and_validate_over_many_seeds_beside_plain_requests(client, server):
    # Plain greedy text, alone and then while constrained requests share its steps: the masks of others
    # change nothing of it.
    def plain() -> str:
        return client.completions.create(model="tiny", prompt="Serving", max_tokens=40, temperature=0).choices[0].text

    alone = plain()
    jobs = [(schema, seed) for schema in (PERSON, POINTS, ANY_OBJECT) for seed in range(8)]

    def completion(seed: int) -> tuple:
        # completions take vLLM's structured_outputs field (and response_format): the same guarantee
        schema_reply = client.completions.create(
            model="tiny", prompt="JSON:", max_tokens=120, seed=seed, extra_body={"structured_outputs": {"json": PERSON}}
        )
        object_reply = client.completions.create(
            model="tiny", prompt="{", max_tokens=60, seed=seed, extra_body={"response_format": {"type": "json_object"}}
        )
        return schema_reply.choices[0].text, object_reply.choices[0].text

    with ThreadPoolExecutor(max_workers=16) as pool:
        plain_beside = [pool.submit(plain) for _ in range(2)]
        completions = pool.map(completion, range(4))
        replies = list(pool.map(lambda job: (job[0], chat_json(client, *job)), jobs))
        completions = list(completions)
    assert [future.result() for future in plain_beside] == [alone] * 2
    for schema, text in replies:
        assert_valid_json(text, schema)
    texts = [text for schema, text in replies if schema is not ANY_OBJECT]
    assert len(set(texts)) == len(texts)  # the model's own choices, not one canned answer
    for schema_text, object_text in completions:
        assert_valid_json(schema_text, PERSON)
        assert isinstance(assert_valid_json(object_text, ANY_OBJECT), dict)


def test_streamed_json_is_the_same_valid_json(client):
    for seed in (1, 2):
        stream = client.chat.completions.create(
            model="tiny",
            messages=[{"role": "user", "content": f"Describe item {seed} as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": "item", "schema": PERSON}},
            temperature=1.0,
            seed=seed,
            max_tokens=120,
            stream=True,
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == chat_json(client, PERSON, seed)
        assert_valid_json(text, PERSON)


def test_regex_choice_and_grammar_constrain_chat_and_completions(client):
    cases = [
        ({"regex": r"[a-z]{2,8}@[a-z]{2,8}\.com"}, lambda text: re.fullmatch(r"[a-z]{2,8}@[a-z]{2,8}\.com", text)),
        ({"choice": ["red", "green", "blue"]}, lambda text: text in ("red", "green", "blue")),
        (
            {"grammar": 'root ::= "(" num ("+" num)* ")"\nnum ::= [1-9] [0-9]{0,2}'},
            lambda text: re.fullmatch(r"\([1-9][0-9]{0,2}(\+[1-9][0-9]{0,2})*\)", text),
        ),
    ]
    for constraint, check in cases:
        for seed in range(4):
            extra = {"structured_outputs": constraint}
            chat = client.chat.completions.create(
                model="tiny", messages=USER, max_tokens=60, seed=seed, temperature=1.0, extra_body=extra
            )
            completion = client.completions.create(model="tiny", prompt="x", max_tokens=60, seed=seed, extra_body=extra)
            for text in (chat.choices[0].message.content, completion.choices[0].text):
                assert check(text), (constraint, text)


def test_a_constraint_that_cannot_compile_is_a_400_naming_the_problem(client):
    bad_regex = {"type": "object", "properties": {"code": {"type": "string", "pattern": "(("}}}
    with pytest.raises(openai.BadRequestError, match="unclosed group"):
        chat_json(client, bad_regex, seed=0)
    with pytest.raises(openai.BadRequestError, match="Unknown format"):
        chat_json(client, {"type": "string", "format": "no-such-format"}, seed=0)
    with pytest.raises(openai.BadRequestError, match="exactly one of json, regex"):
        client.completions.create(
            model="tiny", prompt="x", extra_body={"structured_outputs": {"regex": "a", "choice": ["b"]}}
        )
    with pytest.raises(openai.BadRequestError, match="grammar"):
        client.completions.create(
            model="tiny", prompt="x", extra_body={"structured_outputs": {"grammar": 'root ::= ("'}}
        )


def reference_logprobs(model, ids: List[int], prompt_len: int) -> torch.Tensor:
    """transformers' log-softmax of the next-token logits at each generated position."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)[prompt_len - 1 : len(ids) - 1]


def generated_ids(server, prompt: str, **parameters) -> List[int]:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": 8, "ignore_eos": True, **parameters}}
    with httpx.stream("POST", f"{server.url}/generate_stream", json=body, timeout=120) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
    return [json.loads(line[len("data:") :])["token"]["id"] for line in lines]


@pytest.mark.parametrize("sampling", [{"temperature": 0}, {"temperature": 1.4, "seed": 11}])
def test_completion_logprobs_are_transformers_log_softmax_before_temperature(client, server, reference, sampling):
    prompt = "The quick brown fox"
    prompt_ids = httpx.post(f"{server.url}/tokenize", json={"prompt": prompt}).json()["tokens"]
    lightllm = {"do_sample": True, **sampling} if sampling.get("temperature") else {}
    ids = generated_ids(server, prompt, **lightllm)
    expected = reference_logprobs(reference, prompt_ids + ids, len(prompt_ids))
    completion = client.completions.create(
        model="tiny", prompt=prompt, max_tokens=8, logprobs=5, extra_body={"ignore_eos": True}, **sampling
    )
    logprobs = completion.choices[0].logprobs
    chosen = expected.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1)
    assert logprobs.token_logprobs == pytest.approx(chosen.tolist(), abs=1e-3)
    for position, alternatives in enumerate(logprobs.top_logprobs):
        # keyed by text, so tokens that print alike (parts of one character) share an entry: the likelier
        top = expected[position].topk(5).values.tolist()
        assert max(alternatives.values()) == pytest.approx(max(top[0], chosen[position].item()), abs=1e-3)
        for value in alternatives.values():
            assert min(abs(value - other) for other in [*top, chosen[position].item()]) < 1e-3
    assert logprobs.text_offset[0] == 0 and logprobs.text_offset == sorted(logprobs.text_offset)
    if not sampling.get("temperature"):  # greedy: the chosen token is the most likely one
        assert chosen.tolist() == pytest.approx(expected.max(dim=-1).values.tolist(), abs=1e-6)


def test_chat_logprobs_streamed_and_not_have_tokens_bytes_and_top_logprobs(client, server, reference):
    body = {"messages": USER, "max_tokens": 6, "temperature": 0, "logprobs": True, "top_logprobs": 3}
    whole = client.chat.completions.create(model="tiny", **body, extra_body={"ignore_eos": True})
    streamed = []
    for chunk in client.chat.completions.create(model="tiny", **body, stream=True, extra_body={"ignore_eos": True}):
        if chunk.choices and chunk.choices[0].logprobs is not None:
            streamed.extend(chunk.choices[0].logprobs.content or [])
    content = whole.choices[0].logprobs.content
    assert [entry.model_dump() for entry in streamed] == [entry.model_dump() for entry in content]
    assert len(content) == whole.usage.completion_tokens == 6
    prompt_ids = httpx.post(f"{server.url}/tokenize", json={"messages": USER}).json()["tokens"]
    assert len(prompt_ids) == whole.usage.prompt_tokens
    tokenizer_ids = [entry.top_logprobs[0] for entry in content]
    assert all(len(entry.top_logprobs) == 3 for entry in content)
    assert [entry.logprob for entry in content] == [top.logprob for top in tokenizer_ids]  # greedy picks the top
    # a token may hold part of a character; its bytes are exact, and together they spell the reply
    text_bytes = b"".join(bytes(entry.bytes) for entry in content)
    assert text_bytes.decode("utf-8", errors="replace") == whole.choices[0].message.content
    ids = [
        int(i)
        for i in httpx.post(
            f"{server.url}/tokenize", json={"prompt": whole.choices[0].message.content, "add_special_tokens": False}
        ).json()["tokens"]
    ]
    expected = reference_logprobs(reference, prompt_ids + ids, len(prompt_ids))
    if len(ids) == 6:  # the text re-tokenizes to the same tokens (it usually does): compare every position
        assert [entry.logprob for entry in content] == pytest.approx(
            expected.gather(1, torch.tensor(ids).unsqueeze(1)).squeeze(1).tolist(), abs=1e-3
        )
        for position, entry in enumerate(content):
            top = expected[position].topk(3).values.tolist()
            assert [alternative.logprob for alternative in entry.top_logprobs] == pytest.approx(top, abs=1e-3)
    with pytest.raises(openai.BadRequestError, match="logprobs"):
        client.chat.completions.create(model="tiny", messages=USER, logprobs=True, top_logprobs=21)


def test_n_choices_have_their_own_index_finish_reason_and_reproduce_with_a_seed(client):
    body = {"messages": USER, "max_tokens": 12, "temperature": 1.0, "seed": 7, "n": 3}
    first = client.chat.completions.create(model="tiny", **body)
    again = client.chat.completions.create(model="tiny", **body)
    assert [choice.index for choice in first.choices] == [0, 1, 2]
    texts = [choice.message.content for choice in first.choices]
    assert texts == [choice.message.content for choice in again.choices]
    assert len(set(texts)) == 3
    assert all(choice.finish_reason in ("stop", "length") for choice in first.choices)
    assert 3 <= first.usage.completion_tokens <= 36  # the three choices' tokens, added up
    single = client.chat.completions.create(model="tiny", **{**body, "n": 1})
    assert single.choices[0].message.content == texts[0]  # choice 0 keeps the request's seed
    streamed: Dict[int, str] = {}
    finish: Dict[int, str] = {}
    for chunk in client.chat.completions.create(model="tiny", **body, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] = streamed.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    assert [streamed[i] for i in range(3)] == texts and sorted(finish) == [0, 1, 2]
    completions = client.completions.create(model="tiny", prompt="Hello", max_tokens=8, n=2, seed=3)
    assert [choice.index for choice in completions.choices] == [0, 1]
    assert completions.choices[0].text != completions.choices[1].text


def accumulate_tool_calls(stream) -> tuple:
    calls: Dict[int, Dict[str, Any]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                call["id"] = call["id"] or delta.id
                if delta.function and delta.function.name:
                    call["name"] += delta.function.name
                if delta.function and delta.function.arguments:
                    call["arguments"] += delta.function.arguments
            finish = choice.finish_reason or finish
    return [calls[index] for index in sorted(calls)], finish


NAMED = {"type": "function", "function": {"name": "get_weather"}}


def forced(client, tool_choice, seed: int, stream: bool = False, **extra):
    return client.chat.completions.create(
        model="tiny",
        messages=USER,
        tools=TOOLS,
        tool_choice=tool_choice,
        max_tokens=100,
        seed=seed,
        stream=stream,
        **extra,
    )


def test_forced_tool_calls_always_give_arguments_valid_for_the_function(client):
    jobs = [(NAMED, seed, {}) for seed in range(4)] + [("required", seed, {}) for seed in range(2)]
    jobs += [("required", seed, {"parallel_tool_calls": False}) for seed in range(2)]
    with ThreadPoolExecutor(max_workers=len(jobs) + 2) as pool:
        streams = [
            pool.submit(lambda c: accumulate_tool_calls(forced(client, c, 3, stream=True)), c)
            for c in (NAMED, "required")
        ]
        replies = list(pool.map(lambda job: (job, forced(client, job[0], job[1], **job[2])), jobs))
        streamed = [future.result() for future in streams]
    for (tool_choice, _, extra), reply in replies:
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        calls = choice.message.tool_calls
        if tool_choice is NAMED or extra:
            assert len(calls) == 1
        if tool_choice is NAMED:
            assert calls[0].function.name == "get_weather"
        for call in calls:
            assert call.id.startswith("call_") and call.type == "function"
            jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    for calls, finish in streamed:
        assert finish == "tool_calls" and calls
        for call in calls:
            assert call["id"].startswith("call_")
            jsonschema.validate(json.loads(call["arguments"]), SCHEMAS[call["name"]])


def test_tool_choice_none_never_returns_calls_and_auto_parses_hermes_tool_calls(client):
    reply = client.chat.completions.create(
        model="tiny", messages=USER, tools=TOOLS, tool_choice="none", max_tokens=30, n=3, seed=1
    )
    for choice in reply.choices:
        assert choice.message.tool_calls is None and isinstance(choice.message.content, str)
    # The template offers the tools (the server's parser follows from it: hermes); what the model writes in
    # Hermes' format becomes tool calls. A regex makes the seeded model write one.
    call_text = (
        r'Sure\. <tool_call>\{"name":"get_weather","arguments":\{"city":"[a-z]{3,6}","unit":"celsius"\}\}</tool_call>'
    )
    extra = {"structured_outputs": {"regex": call_text}}
    reply = client.chat.completions.create(
        model="tiny", messages=USER, tools=TOOLS, max_tokens=120, seed=1, extra_body=extra
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Sure."
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), SCHEMAS["get_weather"])
    stream = client.chat.completions.create(
        model="tiny", messages=USER, tools=TOOLS, max_tokens=120, seed=1, extra_body=extra, stream=True
    )
    calls, finish = accumulate_tool_calls(stream)
    assert finish == "tool_calls" and [c["arguments"] for c in calls] == [call.function.arguments]


def test_tokenize_and_detokenize_routes_and_max_model_len(client, server):
    tokenized = httpx.post(f"{server.url}/tokenize", json={"prompt": "Hello, world!"}).json()
    assert tokenized["count"] == len(tokenized["tokens"]) and tokenized["max_model_len"] == 2048
    assert httpx.post(f"{server.url}/detokenize", json={"tokens": tokenized["tokens"]}).json() == {
        "prompt": "Hello, world!"
    }
    chat = client.chat.completions.create(model="tiny", messages=USER, max_tokens=1)
    messages = httpx.post(f"{server.url}/tokenize", json={"messages": USER}).json()
    assert messages["count"] == chat.usage.prompt_tokens
    bad = httpx.post(f"{server.url}/detokenize", json={"tokens": [10**9]})
    assert bad.status_code == 400 and "token ids" in bad.json()["error"]["message"]
    neither = httpx.post(f"{server.url}/tokenize", json={})
    assert neither.status_code == 400 and "prompt or messages" in neither.json()["error"]["message"]
    (model,) = client.models.list().data
    assert model.model_extra["max_model_len"] == 2048


def test_stop_token_ids_include_stop_str_skip_special_tokens_and_echo(client, server):
    ids = generated_ids(server, "Hello", max_new_tokens=8)
    stop_id = ids[3]
    first = ids.index(stop_id)
    stopped = client.completions.create(
        model="tiny", prompt="Hello", max_tokens=8, temperature=0, extra_body={"stop_token_ids": [stop_id]}
    )
    choice = stopped.choices[0]
    assert choice.finish_reason == "stop" and choice.model_extra["stop_reason"] == stop_id
    assert stopped.usage.completion_tokens == first + 1
    full = client.completions.create(
        model="tiny", prompt="Hello", max_tokens=8, temperature=0, extra_body={"ignore_eos": True}
    )
    text = full.choices[0].text
    stop = text[len(text) // 2 : len(text) // 2 + 2]
    kept = client.completions.create(
        model="tiny",
        prompt="Hello",
        max_tokens=8,
        temperature=0,
        stop=[stop],
        extra_body={"include_stop_str_in_output": True},
    )
    dropped = client.completions.create(model="tiny", prompt="Hello", max_tokens=8, temperature=0, stop=[stop])
    assert kept.choices[0].text.endswith(stop) and kept.choices[0].text == dropped.choices[0].text + stop
    assert dropped.choices[0].model_extra["stop_reason"] == stop
    echoed = client.completions.create(
        model="tiny", prompt="Hello", max_tokens=8, temperature=0, echo=True, extra_body={"ignore_eos": True}
    )
    assert echoed.choices[0].text == "Hello" + text
    # special tokens: the chat tokens the model may write show only with skip_special_tokens false
    specials = client.completions.create(
        model="tiny",
        prompt="x",
        max_tokens=4,
        extra_body={"structured_outputs": {"regex": "a"}, "skip_special_tokens": False},
    )
    assert specials.choices[0].text == "a"
    with pytest.raises(openai.BadRequestError, match="echo with logprobs"):
        client.completions.create(model="tiny", prompt="Hello", echo=True, logprobs=1)


def test_metrics_for_the_inference_gateway_and_keda(client, server):
    stop_at = threading.Event()

    def load():
        while not stop_at.is_set():
            client.completions.create(model="tiny", prompt="Hello", max_tokens=32)

    with ThreadPoolExecutor(max_workers=3) as pool:
        for _ in range(3):
            pool.submit(load)
        try:
            seen = []
            for _ in range(20):
                text = httpx.get(f"{server.url}/metrics").text
                usage = float(re.search(r"^litserve_llm_kv_cache_utilization (\S+)$", text, re.M).group(1))
                seen.append(usage)
                assert 0.0 <= usage <= 1.0
                assert re.search(r"^litserve_llm_requests_waiting \S+$", text, re.M)
                if usage > 0:
                    break
        finally:
            stop_at.set()
    assert max(seen) > 0

    # Idle again: the prompt's slots stay in the prefix cache, but a cache no request uses is not load.
    def scrape_when_idle():
        text = httpx.get(f"{server.url}/metrics").text
        return text if re.search(r"^litserve_llm_requests_running 0\.0$", text, re.M) else None

    wait_for(scrape_when_idle, timeout=30, message="no request running")
    idle = httpx.get(f"{server.url}/metrics").text
    assert float(re.search(r"^litserve_llm_kv_tokens_cached (\S+)$", idle, re.M).group(1)) > 0
    assert re.search(r"^litserve_llm_kv_cache_utilization 0\.0$", idle, re.M), idle
