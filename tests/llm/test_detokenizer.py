"""Incremental detokenization with the tiny model's byte-level tokenizer: whole characters only."""

from __future__ import annotations

from transformers import AutoTokenizer

from litserve.llm.detokenizer import REPLACEMENT_CHAR, IncrementalDetokenizer

TEXT = " Grüße aus 東京 🚀✨ — naïve café, 机器学习 🙂!"


def test_deltas_rebuild_the_text_and_never_split_a_character(llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    prompt = tokenizer.encode("Hello")
    ids = tokenizer.encode(TEXT)
    single_token_pieces = [tokenizer.decode([token]) for token in ids]
    assert any(REPLACEMENT_CHAR in piece for piece in single_token_pieces)  # some characters span tokens

    detokenizer = IncrementalDetokenizer(tokenizer, prompt)
    deltas = [detokenizer.push(token) for token in ids]
    assert "".join(deltas) + detokenizer.flush() == TEXT
    assert all(REPLACEMENT_CHAR not in delta for delta in deltas)
    assert "" in deltas  # held back while a character was incomplete
    for delta in deltas:
        delta.encode("utf-8")  # every delta is valid text on its own


def test_incomplete_bytes_at_the_end_are_flushed_as_a_replacement_character(llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    ids = tokenizer.encode("東")
    assert len(ids) > 1  # a rare character: several byte tokens
    detokenizer = IncrementalDetokenizer(tokenizer)
    assert detokenizer.push(ids[0]) == ""
    assert detokenizer.flush() == REPLACEMENT_CHAR


def test_special_tokens_add_no_text(llama_dir):
    tokenizer = AutoTokenizer.from_pretrained(llama_dir)
    detokenizer = IncrementalDetokenizer(tokenizer)
    assert detokenizer.push(tokenizer.encode("Hi")[0]) == "H"
    assert detokenizer.push(tokenizer.eos_token_id) == ""
    assert detokenizer.flush() == ""
