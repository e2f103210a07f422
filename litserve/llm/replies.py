"""What each LLM route sends, built token by token from the engine's ``TokenEvent``s.

A reply object lives as long as its request and has one ``Choice`` per completion asked (``n``; each runs as
its own engine request). ``on_token(index, event)`` returns the bytes to send now (``b""`` when nothing is due
yet, e.g. a non-streaming reply before its last choice's last token).
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import orjson

from litserve.llm.requests import (
    ChatRequest,
    CompletionRequest,
    DetokenizeRequest,
    GenerateRequest,
    TokenizeRequest,
    choice_seed,
)
from litserve.llm.sampling_params import SamplingParams
from litserve.llm.tool_parsers import ForcedToolCalls, make_parser

if TYPE_CHECKING:
    from litserve.llm.engine import TokenEvent

SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
_DONE = b"data: [DONE]\n\n"
LOGPROB_FLOOR = -9999.0  # what -inf is reported as (JSON has no infinity), as vLLM does


def _sse(payload: Dict[str, Any], separator: bytes = b" ") -> bytes:
    return b"data:" + separator + orjson.dumps(payload) + b"\n\n"


class Choice:
    """One completion of a request: its text, tokens and log-probabilities so far."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.text: List[str] = []
        self.output_tokens = 0
        self.finish_reason: Optional[str] = None
        self.stop_reason: Any = None
        self.finished = False
        self.logprobs: List[tuple] = []  # (token id, logprob, top or None, text offset) not yet sent
        self.offset = 0  # characters of text so far (completions' text_offset)
        self.role_sent = False
        self.tool_parser: Any = None
        self.tool_calls: List[Dict[str, Any]] = []

    def record(self, event: TokenEvent) -> None:
        self.logprobs.append((event.token_id, event.logprob, event.top_logprobs, self.offset))
        self.text.append(event.text)
        self.offset += len(event.text)
        self.output_tokens = event.output_tokens
        if event.finished:
            self.finished = True
            self.finish_reason = event.finish_reason or "stop"
            self.stop_reason = event.stop_reason

    def take_logprobs(self) -> List[tuple]:
        taken, self.logprobs = self.logprobs, []
        return taken


class Reply:
    """The reply to one request; subclasses shape it for their route."""

    headers: Any = None  # of the first bytes sent (None: application/json)

    def __init__(self, request: Any, model: str, submitted: float = 0.0) -> None:
        self.request = request
        self.model = request.model if getattr(request, "model", None) else model
        self.submitted = submitted  # when the API process handed it over (time.monotonic())
        self.first_token_at: Optional[float] = None
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.choices = [Choice(index) for index in range(self.n)]
        self.vocabulary: Any = None  # token bytes, for logprobs; set by ``bind``
        self.wants_logprobs = False

    @property
    def n(self) -> int:
        return getattr(self.request, "n", None) or 1

    def bind(self, engine: Any, prompt_ids: List[int], tool_parser: Optional[str] = None) -> None:
        """Called once the request is accepted: what the reply needs from the engine."""
        self.vocabulary = engine.vocabulary
        self.prompt_tokens = len(prompt_ids)

    def prompt_ids(self, engine: Any) -> List[int]:
        return self.request.prompt_ids(engine)

    def sampling_params(self) -> SamplingParams:
        return self.request.sampling_params()

    def choice_params(self, base: SamplingParams) -> List[SamplingParams]:
        """One ``SamplingParams`` per choice: each its own seed (derived from the request's)."""
        self.wants_logprobs = base.logprobs is not None
        if self.n == 1:
            return [base]
        params = []
        for index in range(self.n):
            fields = dict(base.__dict__)
            fields["seed"] = choice_seed(base.seed, index)
            params.append(SamplingParams(**fields))
        return params

    @property
    def output_tokens(self) -> int:
        return sum(choice.output_tokens for choice in self.choices)

    @property
    def finished(self) -> bool:
        return all(choice.finished for choice in self.choices)

    def on_token(self, index: int, event: TokenEvent) -> bytes:
        choice = self.choices[index]
        choice.record(event)
        self.prompt_tokens = event.prompt_tokens
        if index == 0:  # the choices share one prompt: the first computes it, the others reuse it
            self.cached_tokens = event.cached_tokens
        return self.encode(choice, event)

    def encode(self, choice: Choice, event: TokenEvent) -> bytes:
        raise NotImplementedError

    def usage(self) -> Dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.prompt_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
        }

    def token_text(self, token_id: int) -> tuple:
        """(text, bytes) of one token, as logprobs report it."""
        data = self.vocabulary.token_bytes(token_id) if self.vocabulary is not None else b""
        return data.decode("utf-8", errors="replace"), data


class _GenerateRequestReply(Reply):
    def prompt_ids(self, engine: Any) -> List[int]:
        return engine.encode_prompt(self.request.inputs)


class GenerateReply(_GenerateRequestReply):
    """LightLLM's ``/generate``: one JSON body when the request finishes."""

    def encode(self, choice: Choice, event: TokenEvent) -> bytes:
        if not event.finished:
            return b""
        return orjson.dumps(
            {
                "generated_text": ["".join(choice.text)],
                "count_output_tokens": choice.output_tokens,
                "finish_reason": choice.finish_reason,
                "prompt_tokens": self.prompt_tokens,
            }
        )


class GenerateStreamReply(_GenerateRequestReply):
    """LightLLM's ``/generate_stream``: one ``data:{json}`` event per token; the last has the full text."""

    headers = SSE_HEADERS

    def encode(self, choice: Choice, event: TokenEvent) -> bytes:
        choice.logprobs.clear()
        return _sse(
            {
                "token": {
                    "id": event.token_id,
                    "text": event.text,
                    "logprob": event.logprob,
                    "special": event.special,
                },
                "generated_text": "".join(choice.text) if event.finished else None,
                "finished": event.finished,
                "finish_reason": choice.finish_reason,
            },
            separator=b"",
        )


class _OpenAIReply(Reply):
    object_name = ""
    chunk_name = ""
    id_prefix = "cmpl"

    def __init__(self, request: Any, model: str, submitted: float = 0.0) -> None:
        super().__init__(request, model, submitted)
        self.id = f"{self.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.streaming = bool(request.stream)
        if self.streaming:
            self.headers = SSE_HEADERS

    def encode(self, choice: Choice, event: TokenEvent) -> bytes:
        if not self.streaming:
            return self.whole_body() if self.finished else b""
        parts = self.stream_events(choice, event)
        if choice.finished:
            parts.extend(self.closing_events(choice))
            if self.finished:
                if self.request.include_usage:
                    parts.append(self.usage_chunk())
                parts.append(_DONE)
        return b"".join(parts)

    def envelope(self, choices: list, obj: str) -> Dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices}

    def chunk(self, choices: list) -> bytes:
        return _sse(self.envelope(choices, self.chunk_name))

    def usage_chunk(self) -> bytes:
        payload = self.envelope([], self.chunk_name)
        payload["usage"] = self.usage()
        return _sse(payload)

    def whole_body(self) -> bytes:
        payload = self.envelope([self.whole_choice(choice) for choice in self.choices], self.object_name)
        payload["usage"] = self.usage()
        return orjson.dumps(payload)

    def stream_events(self, choice: Choice, event: TokenEvent) -> List[bytes]:
        raise NotImplementedError

    def closing_events(self, choice: Choice) -> List[bytes]:
        raise NotImplementedError

    def whole_choice(self, choice: Choice) -> Dict[str, Any]:
        raise NotImplementedError

    def _stop_reason(self, choice: Choice) -> Dict[str, Any]:
        return {"stop_reason": choice.stop_reason}


class CompletionReply(_OpenAIReply):
    """OpenAI ``/v1/completions``: ``text_completion`` objects; ``echo`` puts the prompt before the text."""

    object_name = chunk_name = "text_completion"

    def bind(self, engine: Any, prompt_ids: List[int], tool_parser: Optional[str] = None) -> None:
        super().bind(engine, prompt_ids, tool_parser)
        self.echo_text = ""
        if self.request.echo:
            prompt = self.request.prompt
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], str):
                prompt = prompt[0]
            self.echo_text = prompt if isinstance(prompt, str) else engine.tokenizer.decode(prompt_ids)
            for choice in self.choices:
                choice.offset = len(self.echo_text)

    def logprobs_body(self, entries: List[tuple]) -> Optional[Dict[str, Any]]:
        if not self.wants_logprobs:
            return None
        tokens, token_logprobs, tops, offsets = [], [], [], []
        for token_id, logprob, top, offset in entries:
            text, _ = self.token_text(token_id)
            tokens.append(text)
            token_logprobs.append(max(logprob, LOGPROB_FLOOR))
            alternatives: Dict[str, float] = {}
            for alt, value in top or []:  # most likely first: tokens that print alike keep the likelier
                alternatives.setdefault(self.token_text(alt)[0], max(value, LOGPROB_FLOOR))
            alternatives.setdefault(text, max(logprob, LOGPROB_FLOOR))  # the chosen token is always there
            tops.append(alternatives)
            offsets.append(offset)
        return {"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": tops, "text_offset": offsets}

    def stream_events(self, choice: Choice, event: TokenEvent) -> List[bytes]:
        text = event.text
        if not choice.role_sent:  # the first chunk of a choice carries the echoed prompt
            choice.role_sent = True
            text = getattr(self, "echo_text", "") + text
        if not text:
            return []
        payload = {"index": choice.index, "text": text, "logprobs": self.logprobs_body(choice.take_logprobs())}
        return [self.chunk([{**payload, "finish_reason": None}])]

    def closing_events(self, choice: Choice) -> List[bytes]:
        payload = {"index": choice.index, "text": "", "logprobs": self.logprobs_body(choice.take_logprobs())}
        return [self.chunk([{**payload, "finish_reason": choice.finish_reason, **self._stop_reason(choice)}])]

    def whole_choice(self, choice: Choice) -> Dict[str, Any]:
        return {
            "index": choice.index,
            "text": getattr(self, "echo_text", "") + "".join(choice.text),
            "logprobs": self.logprobs_body(choice.take_logprobs()),
            "finish_reason": choice.finish_reason,
            **self._stop_reason(choice),
        }


class ChatReply(_OpenAIReply):
    """OpenAI ``/v1/chat/completions``: ``chat.completion`` and ``chat.completion.chunk`` objects.

    With tools: a forced call's constrained output becomes ``tool_calls``; otherwise the server's tool call
    parser (if any) finds calls in the text.
    """

    object_name = "chat.completion"
    chunk_name = "chat.completion.chunk"
    id_prefix = "chatcmpl"

    def bind(self, engine: Any, prompt_ids: List[int], tool_parser: Optional[str] = None) -> None:
        super().bind(engine, prompt_ids, tool_parser)
        request: ChatRequest = self.request
        self.forced = request.forced_tool_choice is not None
        if request.offered_tools() and not self.forced and tool_parser is None:
            raise ValueError(
                "tool_choice 'auto' needs a tool call parser, and this server has none for its chat template: "
                "start it with --tool-call-parser hermes or llama3_json, or force a call with "
                "tool_choice 'required' or a named function"
            )
        for choice in self.choices:
            if self.forced:
                choice.tool_parser = ForcedToolCalls(request.forced_function)
            elif request.offered_tools() and tool_parser is not None:
                choice.tool_parser = make_parser(tool_parser)

    def logprobs_body(self, entries: List[tuple]) -> Optional[Dict[str, Any]]:
        if not self.wants_logprobs:
            return None
        content = []
        for token_id, logprob, top, _ in entries:
            text, data = self.token_text(token_id)
            alternatives = []
            for alt, value in top or []:
                alt_text, alt_data = self.token_text(alt)
                alternatives.append({"token": alt_text, "logprob": max(value, LOGPROB_FLOOR), "bytes": list(alt_data)})
            entry = {"token": text, "logprob": max(logprob, LOGPROB_FLOOR), "bytes": list(data)}
            content.append({**entry, "top_logprobs": alternatives})
        return {"content": content}

    def _delta_chunk(self, choice: Choice, delta: Dict[str, Any], finish_reason: Optional[str] = None) -> bytes:
        if not choice.role_sent:
            delta = {"role": "assistant", **delta}
            choice.role_sent = True
        body = {"index": choice.index, "delta": delta, "logprobs": self.logprobs_body(choice.take_logprobs())}
        body["finish_reason"] = finish_reason
        if finish_reason is not None:
            body.update(self._stop_reason(choice))
        return self.chunk([body])

    def stream_events(self, choice: Choice, event: TokenEvent) -> List[bytes]:
        parser = choice.tool_parser
        if parser is None:
            if event.text or not choice.role_sent:
                return [self._delta_chunk(choice, {"content": event.text})]
            return []
        if isinstance(parser, ForcedToolCalls):
            return self._forced_stream(choice, parser, event.text)
        content, calls = parser.feed(event.text)
        return self._parsed_stream(choice, content, calls)

    def _parsed_stream(self, choice: Choice, content: str, calls: List[Dict[str, Any]]) -> List[bytes]:
        events = []
        if content or not choice.role_sent:
            events.append(self._delta_chunk(choice, {"content": content}))
        for call in calls:
            events.append(self._delta_chunk(choice, {"tool_calls": [{"index": len(choice.tool_calls), **call}]}))
            choice.tool_calls.append(call)
        return events

    def _forced_stream(self, choice: Choice, parser: ForcedToolCalls, text: str) -> List[bytes]:
        events = []
        if parser.function_name is not None:
            if parser.opened is None:
                call = parser.open_named()
                choice.tool_calls.append(call)
                opening = {"index": 0, **call, "function": {"name": parser.function_name, "arguments": ""}}
                events.append(self._delta_chunk(choice, {"tool_calls": [opening]}))
            parser.feed(text)
            if text:
                arguments = {"index": 0, "function": {"arguments": text}}
                events.append(self._delta_chunk(choice, {"tool_calls": [arguments]}))
            return events
        return self._parsed_stream(choice, "", parser.feed(text)) if text or not choice.role_sent else []

    def closing_events(self, choice: Choice) -> List[bytes]:
        events = []
        parser = choice.tool_parser
        if parser is not None and not isinstance(parser, ForcedToolCalls):
            content, calls = parser.finish()
            if content or calls:
                events.extend(self._parsed_stream(choice, content, calls))
        events.append(self._delta_chunk(choice, {}, self.finish_reason_of(choice)))
        return events

    def finish_reason_of(self, choice: Choice) -> str:
        if choice.tool_calls and choice.finish_reason == "stop":
            return "tool_calls"
        return choice.finish_reason or "stop"

    def whole_choice(self, choice: Choice) -> Dict[str, Any]:
        text = "".join(choice.text)
        message: Dict[str, Any] = {"role": "assistant", "content": text}
        parser = choice.tool_parser
        if isinstance(parser, ForcedToolCalls):
            parser.feed(text)
            calls = parser.whole()
            if calls:
                message = {"role": "assistant", "content": None, "tool_calls": calls}
                choice.tool_calls = calls
        elif parser is not None:
            content, calls = parser.feed(text)
            rest, more = parser.finish()
            content = (content + rest).strip()
            calls = calls + more
            if calls:
                message = {"role": "assistant", "content": content or None, "tool_calls": calls}
                choice.tool_calls = calls
        return {
            "index": choice.index,
            "message": message,
            "logprobs": self.logprobs_body(choice.take_logprobs()),
            "finish_reason": self.finish_reason_of(choice),
            **self._stop_reason(choice),
        }


class TokenizerReply(Reply):
    """``/tokenize`` and ``/detokenize``: answered at once from the tokenizer, no generation."""

    def answer(self, engine: Any) -> bytes:
        request = self.request
        if isinstance(request, DetokenizeRequest):
            bad = [token for token in request.tokens if not 0 <= token < engine.vocab_size]
            if bad:
                raise ValueError(f"token ids must be in [0, {engine.vocab_size}), got {bad[:5]}")
            return orjson.dumps({"prompt": engine.tokenizer.decode(request.tokens)})
        tokens = request.token_ids(engine)
        body: Dict[str, Any] = {"count": len(tokens), "max_model_len": engine.max_model_len, "tokens": tokens}
        if request.return_token_strs:
            body["token_strs"] = engine.tokenizer.convert_ids_to_tokens(tokens)
        return orjson.dumps(body)


GENERATE_PATH = "/generate"
GENERATE_STREAM_PATH = "/generate_stream"
COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
TOKENIZE_PATH = "/tokenize"
DETOKENIZE_PATH = "/detokenize"

# path -> (request model, reply class)
ROUTES = {
    GENERATE_PATH: (GenerateRequest, GenerateReply),
    GENERATE_STREAM_PATH: (GenerateRequest, GenerateStreamReply),
    COMPLETIONS_PATH: (CompletionRequest, CompletionReply),
    CHAT_PATH: (ChatRequest, ChatReply),
    TOKENIZE_PATH: (TokenizeRequest, TokenizerReply),
    DETOKENIZE_PATH: (DetokenizeRequest, TokenizerReply),
}
