"""The KV slot allocator and the scheduler, driven with plain numbers and no model."""

from __future__ import annotations

import random

import pytest
import torch

from litserve.llm.kv import OutOfSlotsError, TokenSlotAllocator
from litserve.llm.scheduler import Scheduler, SequenceState, peak_kv_tokens


def test_allocator_takes_distinct_slots_and_takes_back_exactly_what_it_gave():
    slots = TokenSlotAllocator(10)
    first, second = slots.take(4), slots.take(6)
    assert slots.used == 10 and slots.free == 0
    assert sorted(torch.cat([first, second]).tolist()) == list(range(10))
    with pytest.raises(OutOfSlotsError, match="asked for 1 KV slots, only 0 of 10 free"):
        slots.take(1)
    slots.give_back(first)
    assert slots.used == 6
    again = slots.take(4)
    assert sorted(again.tolist()) == sorted(first.tolist())


def test_allocator_refuses_to_take_back_more_than_it_gave():
    slots = TokenSlotAllocator(4)
    slots.take(1)
    with pytest.raises(RuntimeError, match="more KV slots than were taken"):
        slots.give_back(torch.arange(4))


def _brute_force_peak(held_and_remaining):
    """Tokens held at each future step if everyone generates all it may, leaving when done."""
    longest = max(remaining for _, remaining in held_and_remaining)
    return max(sum(held + t for held, remaining in held_and_remaining if remaining >= t) for t in range(longest + 1))


def test_peak_estimate_matches_a_step_by_step_worst_case_simulation():
    rng = random.Random(0)
    for _ in range(300):
        pairs = [(rng.randint(1, 60), rng.randint(0, 40)) for _ in range(rng.randint(1, 12))]
        sequences = [SequenceState(i, held, max_new_tokens=remaining) for i, (held, remaining) in enumerate(pairs)]
        assert peak_kv_tokens(sequences) == _brute_force_peak(pairs)


def test_peak_estimate_by_hand():
    # Sorted by remaining: (2 held, 20 to go), (10 held, 5 to go): max(2 + 20, 12 + 2 * 5) = 22.
    a = SequenceState("a", prompt_len=10, max_new_tokens=5)
    b = SequenceState("b", prompt_len=2, max_new_tokens=20)
    assert peak_kv_tokens([a, b]) == 22
    b.num_output = 15  # it has generated 15 of its 20: holds 17, 5 to go
    assert peak_kv_tokens([a, b]) == 10 + 17 + 2 * 5


def test_prefill_still_to_come_delays_the_end_of_a_sequence_in_the_estimate():
    decoding = SequenceState("decoding", prompt_len=10, max_new_tokens=100, num_computed=10, num_output=1)
    long_prompt = SequenceState("long", prompt_len=100, max_new_tokens=1)
    # Without chunking: max(11 + 99, 111 + 2 * 1) = 113. With 16-token chunks the long prompt needs 7 steps
    # before its one token, while the other grows: its steps are 1 + 7, so max(11 + 99, 111 + 2 * 8) = 127.
    assert peak_kv_tokens([decoding, long_prompt]) == 113
    assert peak_kv_tokens([decoding, long_prompt], prefill_chunk_tokens=16) == 127
    scheduler = Scheduler(capacity=120, max_running_requests=8, prefill_chunk_tokens=16)
    scheduler.running.append(decoding)
    scheduler.add(long_prompt)
    assert scheduler.schedule().admitted == []  # it would overflow 120 slots while it prefills


def test_admission_is_fifo_and_the_first_that_does_not_fit_blocks_the_rest():
    scheduler = Scheduler(capacity=100, max_running_requests=8, prefill_chunk_tokens=1000)
    big = SequenceState("big", prompt_len=50, max_new_tokens=30)
    large = SequenceState("large", prompt_len=40, max_new_tokens=10)  # 80 + 50 > 100 with big running
    small = SequenceState("small", prompt_len=2, max_new_tokens=2)  # would fit, but must not overtake
    for sequence in (big, large, small):
        scheduler.add(sequence)
    plan = scheduler.schedule()
    assert plan.admitted == [big]
    assert list(scheduler.waiting) == [large, small]


def test_running_requests_are_capped():
    scheduler = Scheduler(capacity=10_000, max_running_requests=3, prefill_chunk_tokens=1000)
    for i in range(5):
        scheduler.add(SequenceState(i, prompt_len=4, max_new_tokens=4))
    assert [s.uid for s in scheduler.schedule().admitted] == [0, 1, 2]
    assert len(scheduler.waiting) == 2


def test_long_prompt_is_chunked_and_never_stalls_a_decode():
    scheduler = Scheduler(capacity=1000, max_running_requests=8, prefill_chunk_tokens=8)
    decoder = SequenceState("decoder", prompt_len=3, max_new_tokens=100)
    scheduler.add(decoder)
    scheduler.schedule()
    decoder.num_computed, decoder.num_output = 3, 1  # its prompt is in, one token generated
    long_prompt = SequenceState("long", prompt_len=30, max_new_tokens=5)
    scheduler.add(long_prompt)
    chunks = []
    while not long_prompt.prefilled:
        plan = scheduler.schedule()
        assert plan.decodes == [decoder]  # the decode runs every step
        ((sequence, count),) = plan.prefills
        assert sequence is long_prompt and count <= 8
        chunks.append(count)
        long_prompt.num_computed += count
        decoder.num_computed += 1
        decoder.num_output += 1
    assert chunks == [8, 8, 8, 6]


def _simulate(seed: int, capacity: int, max_running: int, chunk: int, count: int) -> None:
    """Run a random workload through scheduler + allocator, checking the invariants at every step."""
    rng = random.Random(seed)
    scheduler = Scheduler(capacity, max_running, chunk)
    slots = TokenSlotAllocator(capacity)
    held = {}
    arrivals = [SequenceState(i, rng.randint(1, 80), rng.randint(1, 60)) for i in range(count)]
    early_stop = {s.uid: rng.choice([None, rng.randint(1, s.max_new_tokens)]) for s in arrivals}
    admitted_order, finished = [], []
    pending = list(arrivals)
    while pending or scheduler.has_unfinished():
        for _ in range(rng.randint(0, 3)):  # arrivals while others decode
            if pending:
                scheduler.add(pending.pop(0))
        plan = scheduler.schedule()
        admitted_order.extend(s.uid for s in plan.admitted)
        assert len(scheduler.running) <= max_running
        assert sum(c for _, c in plan.prefills) <= chunk
        assert all(s.prefilled for s in plan.decodes)
        assert set(plan.decodes) == {s for s in scheduler.running if s.prefilled}
        sampled = list(plan.decodes)
        for sequence in plan.decodes:
            held[sequence.uid] = torch.cat([held[sequence.uid], slots.take(1)])
            sequence.num_computed += 1
        for sequence, tokens in plan.prefills:
            held[sequence.uid] = torch.cat(
                [held.get(sequence.uid, torch.empty(0, dtype=torch.long)), slots.take(tokens)]
            )
            sequence.num_computed += tokens
            if sequence.prefilled:
                sampled.append(sequence)
        assert slots.used == sum(s.num_computed for s in scheduler.running)  # no padding, no reservation
        assert slots.used <= capacity
        for sequence in sampled:
            sequence.num_output += 1
            if sequence.num_output in (sequence.max_new_tokens, early_stop[sequence.uid]):
                scheduler.remove(sequence)
                slots.give_back(held.pop(sequence.uid))
                finished.append(sequence.uid)
        assert slots.used == sum(s.num_computed for s in scheduler.running)
    assert admitted_order == list(range(count))  # FIFO
    assert sorted(finished) == list(range(count)) and slots.used == 0


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [4, 8, 32, 256])
def test_random_workloads_keep_slots_equal_to_live_tokens_and_never_overflow(seed, chunk):
    _simulate(seed, capacity=300, max_running=16, chunk=chunk, count=40)


def test_tight_capacity_runs_requests_one_by_one():
    _simulate(7, capacity=140, max_running=64, chunk=256, count=20)
