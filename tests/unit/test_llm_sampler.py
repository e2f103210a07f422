"""Sampling parameters, the per-request sampler and stop sequences, on plain tensors and strings."""

from __future__ import annotations

import math

import pytest
import torch

from litserve.llm.sampler import Sampler, SampleRow
from litserve.llm.sampling_params import SamplingParams
from litserve.llm.stopping import StopSequenceFilter


def row(prompt=(), output=(), suppress=(), seed=None, **params) -> SampleRow:
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return SampleRow(SamplingParams(**params), generator, list(prompt), list(output), list(suppress))


def test_greedy_takes_the_argmax_and_reports_its_logprob():
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, -1.0, 0.5]])
    tokens, logprobs, _ = Sampler().sample(logits, [row(), row(temperature=0.7)])  # do_sample=False: greedy
    assert tokens == [1, 0]
    expected = torch.log_softmax(logits, dim=-1)
    assert logprobs == pytest.approx([expected[0, 1].item(), expected[1, 0].item()])


def test_same_seed_gives_the_same_tokens_whatever_else_is_in_the_batch():
    torch.manual_seed(0)
    steps = [torch.randn(5, 50) for _ in range(30)]

    def draws(batch_rows, index, rows_of_step):
        sampler = Sampler()
        return [sampler.sample(rows_of_step(logits), batch_rows)[0][index] for logits in steps]

    sampled = dict(do_sample=True, temperature=1.3, top_p=0.95)
    # The request sits in position 3 of a batch next to greedy, unseeded and other-seeded neighbours ...
    crowd = [row(), row(do_sample=True), row(seed=1, **sampled), row(seed=42, **sampled), row(seed=7, top_k=3)]
    crowded = draws(crowd, 3, lambda logits: logits)
    # ... and alone, seeing the same logits: the neighbours change nothing of what it draws.
    alone = draws([row(seed=42, **sampled)], 0, lambda logits: logits[3:4])
    assert crowded == alone
    assert draws([row(seed=43, **sampled)], 0, lambda logits: logits[3:4]) != alone


def test_sampling_follows_the_softmax_distribution():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    sampler_row = row(seed=0, do_sample=True)
    draws = [Sampler().sample(logits, [sampler_row])[0][0] for _ in range(2000)]
    share_of_one = sum(draws) / len(draws)
    assert 0.72 < share_of_one < 0.78  # p = 0.75


def test_top_k_and_top_p_cut_the_tail():
    logits = torch.tensor([[5.0, 4.9, 4.8, -2.0]])
    for seed in range(20):
        tokens, *_ = Sampler().sample(logits, [row(seed=seed, do_sample=True, top_k=1)])
        assert tokens == [0]
        tokens, *_ = Sampler().sample(logits, [row(seed=seed, do_sample=True, top_p=0.01)])
        assert tokens == [0]
        tokens, *_ = Sampler().sample(logits, [row(seed=seed, do_sample=True, temperature=5.0, top_k=2)])
        assert tokens[0] in (0, 1)


def test_temperature_zero_is_greedy_even_when_sampling():
    logits = torch.tensor([[1.0, 2.0, 1.5]])
    tokens, *_ = Sampler().sample(logits, [row(seed=3, do_sample=True, temperature=0.0)])
    assert tokens == [1]


def test_penalties_move_the_choice_away_from_seen_tokens():
    logits = torch.tensor([[2.0, 1.8, 0.0]])
    assert Sampler().sample(logits, [row(output=[0], repetition_penalty=1.5)])[0] == [1]  # 2.0 / 1.5 < 1.8
    assert Sampler().sample(logits, [row(prompt=[0], repetition_penalty=1.5)])[0] == [1]  # prompt counts too
    assert Sampler().sample(logits, [row(output=[0, 0], frequency_penalty=0.15)])[0] == [1]  # 2.0 - 0.3
    assert Sampler().sample(logits, [row(output=[0, 0], frequency_penalty=0.05)])[0] == [0]  # 2.0 - 0.1
    assert Sampler().sample(logits, [row(output=[0], presence_penalty=0.3)])[0] == [1]
    assert Sampler().sample(logits, [row(prompt=[0], presence_penalty=0.3)])[0] == [0]  # outputs only


def test_suppressed_tokens_are_never_chosen():
    logits = torch.tensor([[9.0, 1.0, 0.0]])
    assert Sampler().sample(logits, [row(suppress=[0])])[0] == [1]
    for seed in range(10):
        assert Sampler().sample(logits, [row(suppress=[0], seed=seed, do_sample=True)])[0][0] != 0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be an integer >= 1"),
        ({"min_new_tokens": 5, "max_new_tokens": 4}, "min_new_tokens (5) must not exceed max_new_tokens (4)"),
        ({"temperature": -0.1}, "temperature must be a number >= 0"),
        ({"top_p": 0}, "top_p must be in (0, 1]"),
        ({"top_k": 0}, "top_k must be -1 (off) or an integer >= 1"),
        ({"repetition_penalty": 0}, "repetition_penalty must be a number > 0"),
        ({"frequency_penalty": 3}, "frequency_penalty must be a number in [-2, 2]"),
        ({"stop_sequences": [""]}, "stop_sequences must be a list of non-empty strings"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"max_new_tokens": True}, "max_new_tokens must be an integer"),
    ],
)
def test_bad_parameters_say_what_is_wrong(fields, message):
    with pytest.raises(ValueError) as info:
        SamplingParams(**fields)
    assert message in str(info.value)


def test_a_single_stop_string_is_accepted():
    assert SamplingParams(stop_sequences="\n").stop_sequences == ["\n"]


def test_stop_sequence_split_across_deltas_is_found_and_never_released():
    stops = StopSequenceFilter(["END"])
    assert stops.push("Hello E") == ("Hello ", False)  # "E" might begin "END": held back
    assert stops.push("N") == ("", False)
    assert stops.push("D and more") == ("", True)


def test_text_that_only_looked_like_a_stop_is_released():
    stops = StopSequenceFilter(["END", "\n\n"])
    assert stops.push("EN") == ("", False)
    assert stops.push("OUGH\n") == ("ENOUGH", False)
    assert stops.push("x") == ("\nx", False)
    assert stops.flush() == ""


def test_earliest_stop_wins_and_checks_can_be_deferred():
    stops = StopSequenceFilter(["b", "a"])
    assert stops.push("xxaxb") == ("xx", True)
    deferred = StopSequenceFilter(["a"])
    assert deferred.push("xa", check=False) == ("xa", False)  # before min_new_tokens, a stop is just text
    assert deferred.push("ya") == ("y", True)
