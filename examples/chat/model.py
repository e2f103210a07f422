"""Model logic for the chat example: a tiny seeded GPT-2 that streams text token by token, fully offline.

At start-up a byte-level BPE tokenizer is trained (deterministically, in a few ms) on the small corpus below, wrapped
as a ``transformers.PreTrainedTokenizerFast`` with a chat template, and a 2-layer GPT-2 is built from a config with
``torch.manual_seed(0)`` weights. Nothing is downloaded. The weights are random, so the text is gibberish, but it is
reproducible: temperature 0 (greedy) or a fixed seed always gives the same tokens.

A streaming LitAPI uses it like this::

    setup(device):        self.model = ChatModel(device)
    decode_request(req):  return self.model.apply_chat_template(req["messages"])    # prompt string
    predict(prompt):      gen = self.model.stream(prompt, max_new_tokens=req.max_tokens, temperature=...,
                                                  top_p=..., seed=..., stop=...)
                          yield from gen           # decoded text pieces, one per token
                          # afterwards: gen.finish_reason ("stop" | "length"), gen.prompt_tokens,
                          # gen.completion_tokens (for the "usage" block)
    encode_response(it):  for piece in it: yield {"delta": piece}

``stream`` returns a :class:`Generation`: an ``Iterator[str]`` whose ``finish_reason`` is set once it is exhausted
("stop" when the model emitted the end token ``<|end|>`` or a ``stop`` string matched, "length" when
``max_new_tokens`` or the context window ran out). ``gen.close()`` stops early (finish_reason stays None).
Each Generation has its own KV cache and RNG, so several can be interleaved on one ChatModel.

Self-check: ``python examples/chat/model.py``
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

SEED = 0
CONTEXT_LENGTH = 1024
ROLES = ("system", "user", "assistant", "tool")
EOS_TOKEN = "<|end|>"
PAD_TOKEN = "<|pad|>"
UNK_TOKEN = "<|unk|>"
SPECIAL_TOKENS = [PAD_TOKEN, UNK_TOKEN, EOS_TOKEN] + [f"<|{role}|>" for role in ROLES]
TARGET_VOCAB_SIZE = 512

# Each message becomes "<|role|>\n{content}<|end|>\n"; the generation prompt opens an assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

CORPUS = """\
Hello! I am a tiny language model that lives inside an example server. I was built from a config, not downloaded,
and my weights are random, so please do not expect wise answers from me. What I can do is stream text one token at a
time, which is exactly what a chat client needs to test a streaming endpoint.
A user asks a question, the server turns the list of messages into a prompt with a chat template, the model reads
the prompt and then predicts the next token, again and again, until it writes the end token or reaches the limit.
Every new token is decoded into a small piece of text and sent to the client right away, so the answer appears on
the screen while the model is still thinking.
How are you today? I am fine, thank you. The weather is nice and the sun is warm. It may rain later in the evening,
so take an umbrella when you go out. Would you like a cup of tea or a glass of water?
Can you tell me a story? Once upon a time there was a small robot who wanted to learn every word in the world. It
read books in the morning, wrote poems in the afternoon, and counted the stars at night. One day the robot met a
cat, a dog and a bird, and together they built a boat and sailed across the sea to find a new home.
What is a model server? A model server loads a model once, keeps it in memory, and answers many requests over
HTTP. It can batch requests together, run several workers, and stream results back as they are produced. Good
servers check their inputs, report clear errors, and stay fast when many users call them at the same time.
Thank you for your help. You are welcome. Have a great day and see you soon!
Numbers: one, two, three, four, five, six, seven, eight, nine, ten. Colors: red, green, blue, yellow, black, white.
Questions often start with who, what, where, when, why, or how. Answers should be short, clear, and kind.
"""


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``CORPUS`` (deterministic) and wrap it with the chat template.

    The full byte alphabet is included, so any text can be encoded without unknown tokens.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TARGET_VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS.splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
        additional_special_tokens=SPECIAL_TOKENS[3:],
        chat_template=CHAT_TEMPLATE,
    )


def build_model(vocab_size: int, eos_token_id: int, pad_token_id: int, seed: int = SEED) -> GPT2LMHeadModel:
    """Create a 2-layer, 64-wide GPT-2 with seeded random weights (global RNG left untouched), in eval mode."""
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=CONTEXT_LENGTH,
        n_embd=64,
        n_layer=2,
        n_head=4,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    return model.eval()


def _message_text(content: Any) -> str:
    """Flatten OpenAI-style message content (a string, None, or a list of ``{"type": "text"}`` parts) to a string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise ValueError("only text content parts are supported")
        return "".join(parts)
    raise ValueError(f"message content must be a string or a list of text parts, got {type(content).__name__}")


class Generation(Iterator[str]):
    """Iterator over decoded text pieces of one generation.

    ``finish_reason`` is None while running and "stop" or "length" once exhausted. ``prompt_tokens`` and
    ``completion_tokens`` (sampled tokens, including the end token) feed an OpenAI-style usage block.
    """

    def __init__(self, run: Callable[[Generation], Iterator[str]], prompt_tokens: int) -> None:
        self.finish_reason: Optional[str] = None
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self._pieces = run(self)  # a generator: nothing runs until the first next()

    def __iter__(self) -> Generation:
        return self

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop generating early (e.g. the client disconnected)."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class ChatModel:
    """Tokenizer + tiny causal LM with a streaming, KV-cached sampling loop."""

    def __init__(self, device: Union[str, torch.device] = "cpu") -> None:
        self.device = torch.device(device)
        self.tokenizer = build_tokenizer()
        self.eos_token_id: int = self.tokenizer.eos_token_id
        self.model = build_model(len(self.tokenizer), self.eos_token_id, self.tokenizer.pad_token_id).to(self.device)
        self.context_length = CONTEXT_LENGTH
        # transformers 5.x renamed `past_key_values` to `cache`; support both spellings.
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        # Text of every token on its own (no clean-up), so streamed pieces concatenate to the full decode.
        self._token_text = [self.tokenizer.backend_tokenizer.decode([i]) for i in range(len(self.tokenizer))]
        self._suppressed = self._unprintable_token_mask()

    def _unprintable_token_mask(self) -> torch.Tensor:
        """True for tokens the sampler must never pick: special tokens (except EOS) and tokens that do not decode
        to printable text on their own (lone UTF-8 bytes, newlines and other control characters). Every generated
        token then decodes to a clean, self-contained, single-line piece of text."""
        special = set(self.tokenizer.all_special_ids) - {self.eos_token_id}
        bad = [
            i in special or (i != self.eos_token_id and (not text.isprintable() or "\ufffd" in text))
            for i, text in enumerate(self._token_text)
        ]
        return torch.tensor(bad, dtype=torch.bool)

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """Render OpenAI-style ``[{"role", "content"}, ...]`` messages into a prompt ending with an assistant turn."""
        if not messages:
            raise ValueError("messages must be a non-empty list")
        cleaned = []
        for message in messages:
            if not isinstance(message, Mapping):
                raise ValueError("each message must be an object with 'role' and 'content'")
            role = message.get("role")
            if role not in ROLES:
                raise ValueError(f"unsupported role {role!r}; expected one of {', '.join(ROLES)}")
            cleaned.append({"role": role, "content": _message_text(message.get("content"))})
        return self.tokenizer.apply_chat_template(cleaned, tokenize=False, add_generation_prompt=True)

    def count_tokens(self, text: str) -> int:
        """Number of tokens in ``text`` (special tokens written in the text count as one token each)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def stream(
        self,
        prompt: str,
        max_new_tokens: int = 50,
        temperature: float = 1.0,
        top_p: Optional[float] = None,
        seed: Optional[int] = None,
        stop: Optional[Sequence[str]] = None,
    ) -> Generation:
        """Generate up to ``max_new_tokens`` tokens after ``prompt``, yielding the decoded text of each one.

        ``temperature == 0`` is greedy decoding; otherwise sampling (nucleus if ``top_p < 1``) uses a private
        generator seeded with ``seed`` (random if None). Generation ends at the end token or when a ``stop`` string
        appears (finish_reason "stop"; the stop string itself is not yielded), or after ``max_new_tokens`` tokens or
        at the end of the context window ("length"). Raises ValueError for bad arguments or an over-long prompt.
        """
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError("max_new_tokens must be a non-negative integer")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        stops = [s for s in (stop or []) if s]
        prompt_ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        if len(prompt_ids) >= self.context_length:
            raise ValueError(f"prompt has {len(prompt_ids)} tokens; the context window is {self.context_length}")
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(int(seed))
        return Generation(
            lambda gen: self._run(gen, prompt_ids, max_new_tokens, temperature, top_p, generator, stops),
            prompt_tokens=len(prompt_ids),
        )

    @torch.inference_mode()
    def _step(self, input_ids: list[int], cache: Any) -> tuple[torch.Tensor, Any]:
        """One forward pass; returns the next-token logits (float32, CPU) and the updated KV cache."""
        ids = torch.tensor([input_ids], dtype=torch.long, device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self._cache_arg: cache})
        new_cache = out["cache"] if "cache" in out else out["past_key_values"]
        return out.logits[0, -1].float().cpu(), new_cache

    def _sample(
        self, logits: torch.Tensor, temperature: float, top_p: Optional[float], generator: torch.Generator
    ) -> int:
        logits = logits.masked_fill(self._suppressed, float("-inf"))
        if temperature == 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p is not None and top_p < 1:
            sorted_probs, order = torch.sort(probs, descending=True)
            outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p  # the top token always stays
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=generator))

    def _run(
        self,
        generation: Generation,
        prompt_ids: list[int],
        max_new_tokens: int,
        temperature: float,
        top_p: Optional[float],
        generator: torch.Generator,
        stops: list[str],
    ) -> Iterator[str]:
        budget = min(max_new_tokens, self.context_length - max(len(prompt_ids), 1))
        text = ""  # everything generated so far
        emitted = 0  # how much of `text` has been yielded; the rest may be the start of a stop string
        cache = None
        next_input = prompt_ids or [self.eos_token_id]  # an empty prompt starts from the end token, as in GPT-2
        finish_reason = "length"
        for _ in range(budget):
            logits, cache = self._step(next_input, cache)
            token_id = self._sample(logits, temperature, top_p, generator)
            generation.completion_tokens += 1
            if token_id == self.eos_token_id:
                finish_reason = "stop"
                break
            next_input = [token_id]
            text += self._token_text[token_id]
            hit = min((i for i in (text.find(s, emitted) for s in stops) if i >= 0), default=-1)
            if hit >= 0:
                text = text[:hit]
                finish_reason = "stop"
                break
            safe = len(text) - _held_back(text, stops)
            if safe > emitted:
                yield text[emitted:safe]
                emitted = safe
        if len(text) > emitted:
            yield text[emitted:]
        generation.finish_reason = finish_reason


def _held_back(text: str, stops: list[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop string (must not be sent yet)."""
    longest = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:n]):
                longest = n
                break
    return longest


def _self_check() -> None:
    import time

    start = time.perf_counter()
    chat = ChatModel("cpu")
    load_s = time.perf_counter() - start
    params = sum(p.numel() for p in chat.model.parameters())
    print(f"loaded in {load_s:.2f}s (vocab {len(chat.tokenizer)}, {params} parameters)")
    assert build_tokenizer().backend_tokenizer.to_str() == chat.tokenizer.backend_tokenizer.to_str()

    prompt = chat.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi!"}]}]
    )
    print(repr(prompt), "->", chat.count_tokens(prompt), "tokens")
    assert prompt.endswith("<|assistant|>\n") and chat.count_tokens("") == 0
    assert chat.tokenizer.decode(chat.tokenizer.encode("héllo wörld ✓", add_special_tokens=False)) == "héllo wörld ✓"

    start = time.perf_counter()
    greedy = chat.stream(prompt, max_new_tokens=50, temperature=0)
    pieces = list(greedy)
    gen_s = time.perf_counter() - start
    print(
        f"greedy: {len(pieces)} pieces in {gen_s * 1000:.0f} ms ({gen_s / max(1, len(pieces)) * 1000:.2f} ms/token), "
        f"finish={greedy.finish_reason}, usage={greedy.prompt_tokens}+{greedy.completion_tokens}"
    )
    print("  ", repr("".join(pieces)))
    assert greedy.finish_reason == "length" and greedy.completion_tokens == 50 and len(pieces) == 50
    assert list(chat.stream(prompt, 50, temperature=0)) == pieces, "greedy decoding is not deterministic"

    sampled = list(chat.stream(prompt, 50, temperature=0.8, top_p=0.9, seed=7))
    assert sampled == list(chat.stream(prompt, 50, temperature=0.8, top_p=0.9, seed=7)), "seeded sampling differs"
    print("sampled:", repr("".join(sampled)))

    stop = "".join(sampled)[10:14]
    stopped = chat.stream(prompt, 50, temperature=0.8, top_p=0.9, seed=7, stop=[stop])
    text = "".join(stopped)
    assert stopped.finish_reason == "stop" and text == "".join(sampled)[: "".join(sampled).find(stop)], text
    print(f"stop={stop!r}: {text!r} finish={stopped.finish_reason}")

    eos_seed = next(s for s in range(1000) if _ends_with_eos(chat, prompt, s))
    eos_gen = chat.stream(prompt, 50, temperature=1.5, seed=eos_seed)
    list(eos_gen)
    print(
        f"end token sampled with temperature=1.5 seed={eos_seed}: finish={eos_gen.finish_reason} "
        f"after {eos_gen.completion_tokens} tokens"
    )
    empty = chat.stream(prompt, 0)
    assert list(empty) == [] and empty.finish_reason == "length"
    print("chat self-check OK")


def _ends_with_eos(chat: ChatModel, prompt: str, seed: int) -> bool:
    gen = chat.stream(prompt, 50, temperature=1.5, seed=seed)
    list(gen)
    return gen.finish_reason == "stop"


if __name__ == "__main__":
    _self_check()
