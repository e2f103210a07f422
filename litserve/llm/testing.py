"""Seeded tiny model directories, built offline, for tests, examples and benchmarks.

``build_tiny_model(directory)`` writes what a real Hugging Face model directory holds (``config.json``,
``model.safetensors``, tokenizer files with a chat template), so the engine loads it through the same path
as any downloaded model. Weights are random but seeded: the same arguments give the same model.
"""

from __future__ import annotations

import os
from typing import Any, Dict

from litserve.llm.quiet import no_progress_bars

ARCHITECTURES = ("llama", "mistral", "qwen2", "gpt2")

EOS_TOKEN = "<|endoftext|>"
CHAT_SPECIAL_TOKENS = ["<|im_start|>", "<|im_end|>"]

# ChatML, as Qwen2 and many others use it; the generation prompt opens the assistant's turn. With ``tools``,
# a system turn lists them and asks for Hermes-style ``<tool_call>`` JSON (as Qwen 2.5's template does);
# assistant tool calls and tool results are rendered the same way.
CHAT_TEMPLATE = (
    "{% if tools %}"
    "{{ '<|im_start|>system\\n' }}"
    "{% if messages and messages[0]['role'] == 'system' %}{{ messages[0]['content'] + '\\n\\n' }}{% endif %}"
    "{{ '# Tools\\n<tools>\\n' }}"
    "{% for tool in tools %}{{ tool | tojson }}{{ '\\n' }}{% endfor %}"
    '{{ \'</tools>\\nCall a function with <tool_call>{\\"name\\": ..., \\"arguments\\": {...}}</tool_call>\' }}'
    "{{ '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if tools and loop.first and message['role'] == 'system' %}"
    "{% elif message.get('tool_calls') %}"
    "{{ '<|im_start|>assistant\\n' + (message['content'] or '') }}"
    "{% for call in message['tool_calls'] %}"
    "{{ '<tool_call>' }}{{ {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson }}"
    "{{ '</tool_call>' }}"
    "{% endfor %}"
    "{{ '<|im_end|>\\n' }}"
    "{% elif message['role'] == 'tool' %}"
    "{{ '<|im_start|>user\\n<tool_response>' + message['content'] + '</tool_response><|im_end|>\\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# A few lines of mixed text (ASCII, accents, CJK, emoji) so the byte-level BPE learns merges across scripts
# and multi-byte characters split across tokens, which the incremental detokenizer must handle.
TRAINING_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "Serving large language models with continuous batching keeps every request moving.",
    "A token-level KV cache wastes no memory: each token holds exactly one slot.",
    "Hello, world! How are you today? I am fine, thank you.",
    "def add(a, b):\n    return a + b\n",
    "Les élèves étudient la thermodynamique à l'université.",
    "Über die Brücke gehen wir morgen früh.",
    "東京は日本の首都です。今日は良い天気ですね。",
    "机器学习模型在服务器上运行。",
    "Emoji test: 🚀✨🙂 and more 🎉.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 3.14159",
    "user assistant system: What is AI? AI is the study of machines that think.",
]


def build_tiny_model(
    directory: str,
    arch: str = "llama",
    hidden_size: int = 256,
    num_layers: int = 4,
    seed: int = 0,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    vocab_size: int = 1024,
    max_position_embeddings: int = 2048,
    initializer_range: float = 0.1,
    sliding_window: int | None = None,
) -> str:
    """Write a seeded random causal LM with a byte-level BPE tokenizer to ``directory`` and return it.

    ``transformers.AutoModelForCausalLM.from_pretrained(directory)`` and ``AutoTokenizer.from_pretrained``
    load the result. ``initializer_range`` is larger than the usual 0.02 so that random logits are well
    spread and greedy decoding rarely meets a near tie. ``num_kv_heads`` below ``num_heads`` gives
    grouped-query attention (LLaMA family only). ``sliding_window`` limits attention to the last so many
    positions (Mistral: every layer; Qwen2: every layer too, through ``use_sliding_window``).

    Example:
        >>> path = build_tiny_model("/tmp/tiny-llama", arch="llama", hidden_size=128, num_layers=2)
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {', '.join(ARCHITECTURES)}, got {arch!r}")
    os.makedirs(directory, exist_ok=True)
    tokenizer = _build_tokenizer(vocab_size)
    tokenizer.save_pretrained(directory)

    config = AutoConfig.for_model(arch, **_config_fields(arch, hidden_size, num_layers, num_heads, num_kv_heads))
    config.vocab_size = len(tokenizer)
    config.initializer_range = initializer_range
    config.bos_token_id = config.eos_token_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    config.pad_token_id = None
    _apply_sliding_window(config, arch, sliding_window)
    if arch == "gpt2":
        config.n_positions = max_position_embeddings
    else:
        config.max_position_embeddings = max_position_embeddings

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config.pad_token_id = config.eos_token_id
    with no_progress_bars():
        model.save_pretrained(directory)
    return directory


def _config_fields(arch: str, hidden: int, layers: int, heads: int, kv_heads: int | None) -> Dict[str, Any]:
    if arch == "gpt2":
        return {"n_embd": hidden, "n_layer": layers, "n_head": heads, "n_inner": 4 * hidden}
    fields = {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads or heads,
        "intermediate_size": 2 * hidden,
        "tie_word_embeddings": False,
    }
    return fields


def _apply_sliding_window(config, arch: str, window: int | None) -> None:
    if arch == "mistral":
        config.sliding_window = window
    elif arch == "qwen2":
        config.use_sliding_window = window is not None
        config.sliding_window = window
        config.max_window_layers = 0
        config.layer_types = ["sliding_attention" if window else "full_attention"] * config.num_hidden_layers
    elif window is not None:
        raise ValueError(f"sliding_window applies to mistral and qwen2, not {arch}")


def _build_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, *CHAT_SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TRAINING_LINES, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token=EOS_TOKEN,
        bos_token=EOS_TOKEN,
        unk_token=EOS_TOKEN,
        additional_special_tokens=CHAT_SPECIAL_TOKENS,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
