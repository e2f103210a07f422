"""Tool calls in an LLM's output: parsed into OpenAI ``tool_calls``, whole replies and streams alike.

Parsers (``--tool-call-parser``), for what the model writes when it calls a tool:

- ``hermes`` (Hermes, Qwen 2.5/3): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, any number,
  text around them is content;
- ``llama3_json`` (Llama 3.1+): the reply is ``{"name": ..., "parameters": {...}}`` (after an optional
  ``<|python_tag|>``), several separated by ``;``.

``auto`` picks one from the chat template (``<tool_call>`` in it: hermes; ``<|python_tag|>``: llama3_json).

Forced calls (``tool_choice="required"`` or a named function) need no parser: the output is constrained to
JSON (``forced_tool_schema``) and read by ``ForcedToolCalls``.

Every parser is a stream filter: ``feed(text)`` returns (content to send now, tool calls complete now), and
``finish()`` what is left; a whole reply is one ``feed`` and a ``finish``.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from litserve.specs.openai_types import make_tool_call_id

PARSERS = ("hermes", "llama3_json")
Parsed = Tuple[str, List[Dict[str, Any]]]


def resolve_parser(name: Optional[str], chat_template: Optional[str]) -> Optional[str]:
    """The parser ``name`` stands for: itself, None for ``none``, or for ``auto`` the one the template uses."""
    if name in (None, "none"):
        return None
    if name == "auto":
        template = chat_template or ""
        if "<tool_call>" in template:
            return "hermes"
        if "<|python_tag|>" in template:
            return "llama3_json"
        return None
    if name not in PARSERS:
        raise ValueError(f"tool_call_parser must be auto, none or one of {', '.join(PARSERS)}, got {name!r}")
    return name


def tool_call(name: str, arguments: Any) -> Dict[str, Any]:
    """An OpenAI tool call; ``arguments`` as a JSON text (a dict is encoded)."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return {"id": make_tool_call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}


def _call_from_json(data: Any, arguments_keys: Tuple[str, ...]) -> Optional[Dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        return None
    for key in arguments_keys:
        if key in data:
            arguments = data[key]
            break
    else:
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return tool_call(data["name"], arguments)


class HermesToolParser:
    """``<tool_call>{json}</tool_call>`` blocks become tool calls; text outside them stays content."""

    START, END = "<tool_call>", "</tool_call>"

    def __init__(self) -> None:
        self._buffer = ""
        self._in_call = False

    def feed(self, text: str) -> Parsed:
        self._buffer += text
        content: List[str] = []
        calls: List[Dict[str, Any]] = []
        while True:
            if not self._in_call:
                start = self._buffer.find(self.START)
                if start < 0:
                    keep = _partial_suffix(self._buffer, self.START)
                    content.append(self._buffer[: len(self._buffer) - keep])
                    self._buffer = self._buffer[len(self._buffer) - keep :]
                    break
                content.append(self._buffer[:start])
                self._buffer = self._buffer[start + len(self.START) :]
                self._in_call = True
            end = self._buffer.find(self.END)
            if end < 0:
                break
            body, self._buffer = self._buffer[:end], self._buffer[end + len(self.END) :]
            self._in_call = False
            call = self._parse(body)
            if call is None:
                content.append(self.START + body + self.END)  # not a call after all: the text stays
            else:
                calls.append(call)
        return "".join(content), calls

    def finish(self) -> Parsed:
        rest, self._buffer = self._buffer, ""
        if not self._in_call:
            return rest, []
        self._in_call = False
        call = self._parse(rest)  # a call whose closing tag never came (e.g. the end of the output)
        return ("", [call]) if call is not None else (self.START + rest, [])

    @staticmethod
    def _parse(body: str) -> Optional[Dict[str, Any]]:
        try:
            data = json.loads(body.strip())
        except ValueError:
            return None
        return _call_from_json(data, ("arguments", "parameters"))


class Llama3JsonToolParser:
    """A reply that is JSON (``{"name", "parameters"}``, ``;``-separated) is tool calls; anything else content.

    While streaming, a reply that starts with ``{`` is held until the end, then parsed.
    """

    PYTHON_TAG = "<|python_tag|>"

    def __init__(self) -> None:
        self._buffer = ""
        self._mode: Optional[str] = None  # None (undecided), "json" (held), "text"

    def feed(self, text: str) -> Parsed:
        if self._mode == "text":
            return text, []
        self._buffer += text
        head = self._buffer.lstrip()
        if head.startswith(self.PYTHON_TAG):
            head = head[len(self.PYTHON_TAG) :].lstrip()
        if not head or self.PYTHON_TAG.startswith(head):
            return "", []  # nothing to decide on yet
        if head.startswith("{"):
            self._mode = "json"
            return "", []
        self._mode = "text"
        out, self._buffer = self._buffer, ""
        return out, []

    def finish(self) -> Parsed:
        rest, self._buffer = self._buffer, ""
        if self._mode == "text" or not rest.strip():
            return rest, []
        calls = self.parse_calls(rest)
        return ("", calls) if calls else (rest, [])

    @classmethod
    def parse_calls(cls, text: str) -> List[Dict[str, Any]]:
        text = text.strip()
        if text.startswith(cls.PYTHON_TAG):
            text = text[len(cls.PYTHON_TAG) :]
        decoder = json.JSONDecoder()
        calls = []
        position = 0
        while True:
            while position < len(text) and text[position] in " \t\r\n;":
                position += 1
            if position >= len(text):
                return calls
            try:
                data, position = decoder.raw_decode(text, position)
            except ValueError:
                return []
            call = _call_from_json(data, ("parameters", "arguments"))
            if call is None:
                return []
            calls.append(call)


def make_parser(name: str) -> Any:
    return HermesToolParser() if name == "hermes" else Llama3JsonToolParser()


def forced_tool_schema(tools: List[Dict[str, Any]], tool_choice: Any, parallel: Optional[bool]) -> Dict[str, Any]:
    """The JSON schema a forced call's output follows: a named function's ``parameters`` (the output is its
    arguments), or for ``"required"`` an array of ``{"name", "parameters"}``, one item per call."""
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        for tool in tools:
            if tool["function"]["name"] == name:
                return _parameters(tool)
        raise ValueError(f"tool_choice names the function {name!r}, which is not among the tools")
    variants = [
        {
            "type": "object",
            "properties": {"name": {"const": tool["function"]["name"]}, "parameters": _parameters(tool)},
            "required": ["name", "parameters"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    schema: Dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": variants}}
    if parallel is False:
        schema["maxItems"] = 1
    return schema


def _parameters(tool: Dict[str, Any]) -> Dict[str, Any]:
    parameters = tool["function"].get("parameters")
    return parameters if parameters else {"type": "object", "properties": {}}


class ForcedToolCalls:
    """Reads a forced call's constrained output: a named function's arguments, or the ``required`` array.

    Streaming: a named call opens at once (id and name) and its arguments follow as they come; the items of
    the array are sent one whole call each as soon as each is complete.
    """

    def __init__(self, function_name: Optional[str]) -> None:
        self.function_name = function_name  # None: the "required" array
        self._text = ""
        self._scanned = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self._item_start: Optional[int] = None
        self.opened: Optional[Dict[str, Any]] = None  # the named call, once opened

    def open_named(self) -> Dict[str, Any]:
        self.opened = tool_call(self.function_name, "")
        return self.opened

    def feed(self, text: str) -> List[Dict[str, Any]]:
        """New text; returns the array items completed by it (``required``) or nothing (named)."""
        self._text += text
        if self.function_name is not None:
            return []
        calls = []
        for position in range(self._scanned, len(self._text)):
            char = self._text[position]
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
                continue
            if char == '"':
                self._in_string = True
            elif char in "[{":
                self._depth += 1
                if self._depth == 2 and char == "{":
                    self._item_start = position
            elif char in "]}":
                if self._depth == 2 and char == "}" and self._item_start is not None:
                    call = self._item(self._text[self._item_start : position + 1])
                    if call is not None:
                        calls.append(call)
                    self._item_start = None
                self._depth -= 1
        self._scanned = len(self._text)
        return calls

    @staticmethod
    def _item(text: str) -> Optional[Dict[str, Any]]:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        return _call_from_json(data, ("parameters", "arguments"))

    def whole(self) -> List[Dict[str, Any]]:
        """The calls of the whole output; [] if it is not complete JSON (cut by max_tokens)."""
        try:
            data = json.loads(self._text)
        except ValueError:
            return []
        if self.function_name is not None:
            return [tool_call(self.function_name, self._text)] if isinstance(data, dict) else []
        if not isinstance(data, list):
            return []
        calls = [_call_from_json(item, ("parameters", "arguments")) for item in data]
        return [call for call in calls if call is not None]

    @property
    def text(self) -> str:
        return self._text


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that could begin ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
