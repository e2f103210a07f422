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
