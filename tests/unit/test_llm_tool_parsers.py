"""Tool calls read from model text (Hermes/Qwen and Llama 3 formats, forced calls), whole and streamed."""

from __future__ import annotations

import json

import pytest

from litserve.llm.tool_parsers import (
    ForcedToolCalls,
    HermesToolParser,
    Llama3JsonToolParser,
    forced_tool_schema,
    resolve_parser,
)


def run(parser, pieces):
    content, calls = [], []
    for piece in pieces:
        text, found = parser.feed(piece)
        content.append(text)
        calls.extend(found)
    text, found = parser.finish()
    return "".join(content) + text, calls + found


def test_hermes_calls_are_found_across_pieces_and_the_text_around_them_stays_content():
    text = (
        'Sure. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call> and '
        '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    )
    for size in (1, 3, 7, len(text)):
        content, calls = run(HermesToolParser(), [text[i : i + size] for i in range(0, len(text), size)])
        assert content == "Sure.  and "
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
            ("get_weather", {"city": "Paris"}),
            ("add", {"a": 1, "b": 2}),
        ]
        assert all(c["id"].startswith("call_") and c["type"] == "function" for c in calls)


def test_hermes_keeps_text_that_only_looks_like_a_call_and_reads_an_unclosed_last_call():
    content, calls = run(HermesToolParser(), ["a <tool", "_call>not json</tool_call> b <tool"])
    assert calls == [] and content == "a <tool_call>not json</tool_call> b <tool"
    content, calls = run(HermesToolParser(), ['<tool_call>{"name": "f", "arguments": {}}'])
    assert content == "" and calls[0]["function"]["name"] == "f"


def test_llama3_json_calls_and_plain_text():
    content, calls = run(
        Llama3JsonToolParser(),
        ["<|python_tag|>", '{"name": "f", "parameters": {"x": 1}}; ', '{"name": "g", "parameters": {}}'],
    )
    assert content == "" and [c["function"]["name"] for c in calls] == ["f", "g"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1}
    assert run(Llama3JsonToolParser(), ["Hel", "lo {not a call}"]) == ("Hello {not a call}", [])
    assert run(Llama3JsonToolParser(), ['{"answer": 42}']) == ('{"answer": 42}', [])  # JSON, but no call


def test_forced_required_calls_stream_one_whole_call_per_item():
    forced = ForcedToolCalls(None)
    text = '[{"name":"f","parameters":{"s":"a}]\\"{"}},{"name":"g","parameters":{}}]'
    streamed = [call for i in range(0, len(text), 4) for call in forced.feed(text[i : i + 4])]
    assert [json.loads(c["function"]["arguments"]) for c in streamed] == [{"s": 'a}]"{'}, {}]
    assert [c["function"]["name"] for c in forced.whole()] == ["f", "g"]
    named = ForcedToolCalls("f")
    named.feed('{"x":1}')
    assert named.whole()[0]["function"] == {"name": "f", "arguments": '{"x":1}'}
    cut = ForcedToolCalls("f")
    cut.feed('{"x":')
    assert cut.whole() == []


def test_forced_schemas_and_parser_choice():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert forced_tool_schema(tools, {"type": "function", "function": {"name": "f"}}, None) == {"type": "object"}
    required = forced_tool_schema(tools, "required", False)
    assert required["minItems"] == 1 and required["maxItems"] == 1
    with pytest.raises(ValueError, match="not among the tools"):
        forced_tool_schema(tools, {"type": "function", "function": {"name": "nope"}}, None)
    assert resolve_parser("auto", "... <tool_call> ...") == "hermes"
    assert resolve_parser("auto", "{{ '<|python_tag|>' }}") == "llama3_json"
    assert resolve_parser("auto", "plain") is None and resolve_parser("none", "<tool_call>") is None
    with pytest.raises(ValueError, match="tool_call_parser"):
        resolve_parser("mistral", "")
