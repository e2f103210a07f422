"""The LLM worker's thread rule and the ``litserve llm`` flags that turn engine features off."""

from __future__ import annotations

from litserve.cli import _normalize_flags
from litserve.llm.cli import llm
from litserve.llm.threads import default_num_threads


def test_one_core_is_left_to_the_api_process():
    assert default_num_threads(cores=1, torch_default=1) == 1
    assert default_num_threads(cores=2, torch_default=2) == 1
    assert default_num_threads(cores=4, torch_default=4) == 3
    assert default_num_threads(cores=64, torch_default=32) == 32  # never more than torch's own default


def test_no_flags_turn_a_boolean_option_off():
    assert _normalize_flags(llm, ["--no-prefix-caching", "--num-threads", "2"]) == [
        "--prefix_caching=false",
        "--num_threads",
        "2",
    ]
    assert _normalize_flags(llm, ["--prefix-caching"]) == ["--prefix_caching=true"]


def test_a_step_borrows_every_core_only_when_its_work_dwarfs_what_it_streams():
    import torch

    from litserve.llm.threads import StepThreads

    tiny = StepThreads(weight_bytes=10 * 2**20, kv_bytes_per_token_layer=2048, base=1, every_core=2)
    assert tiny.choose(prompt_tokens=0, streamed_tokens=16, context_tokens=16 * 110) == (1, 1)  # a few chats
    assert tiny.choose(prompt_tokens=0, streamed_tokens=48, context_tokens=48 * 110) == (1, 2)  # 10 MiB to attend
    assert tiny.choose(prompt_tokens=0, streamed_tokens=1, context_tokens=200) == (1, 1)  # a small model's last one
    assert tiny.choose(prompt_tokens=0, streamed_tokens=4, context_tokens=4 * 1700) == (1, 2)  # long contexts
    assert tiny.choose(prompt_tokens=128, streamed_tokens=48, context_tokens=0) == (2, 1)  # a prompt chunk
    # after a forward pass on every core torch's OpenMP threads spin there: the kernel's own would wait for them
    assert tiny.choose(prompt_tokens=1024, streamed_tokens=4, context_tokens=4 * 1700) == (2, 1)
    assert tiny.choose(prompt_tokens=127, streamed_tokens=48, context_tokens=0) == (1, 1)
    large = StepThreads(weight_bytes=400 * 2**20, kv_bytes_per_token_layer=8192, base=1, every_core=2)
    assert large.choose(prompt_tokens=0, streamed_tokens=16, context_tokens=16 * 50) == (2, 1)  # weights dominate
    assert large.choose(prompt_tokens=0, streamed_tokens=1, context_tokens=53) == (2, 1)  # one short chat
    assert large.choose(prompt_tokens=0, streamed_tokens=64, context_tokens=64 * 10) == (1, 1)  # many to stream
    alone = StepThreads(weight_bytes=400 * 2**20, kv_bytes_per_token_layer=8192, base=1, every_core=1)
    assert alone.choose(prompt_tokens=4096, streamed_tokens=1, context_tokens=10**6) == (1, 1)  # nothing to borrow

    before = torch.get_num_threads()
    with tiny.running(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == 1  # the worker's own count, whatever it was before
    torch.set_num_threads(before)
