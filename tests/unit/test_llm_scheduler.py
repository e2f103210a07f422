"""The KV manager (slot allocator, prefix tree) and the scheduler, driven with plain numbers and no model."""

from __future__ import annotations

import random

import pytest

from litserve.llm.kv import KVManager, OutOfSlotsError, SlotAllocator
from litserve.llm.scheduler import PREFIX_WAIT_TOKENS, Scheduler, SequenceState, peak_kv_tokens


def _scheduler(capacity: int, max_running: int, chunk: int, prefix_caching: bool = True) -> Scheduler:
    return Scheduler(KVManager(capacity, max_running, capacity, prefix_caching), max_running, chunk)


def test_allocator_takes_distinct_slots_and_takes_back_exactly_what_it_gave():
    slots = SlotAllocator(10)
    first, second = slots.take(4), slots.take(6)
    assert slots.used == 10 and slots.free == 0
    assert sorted(first + second) == list(range(10))
    with pytest.raises(OutOfSlotsError, match="asked for 1 KV slots, only 0 of 10 free"):
        slots.take(1)
    slots.give_back(first)
    assert slots.used == 6
    again = slots.take(4)
    assert sorted(again) == sorted(first)


def test_allocator_refuses_to_take_back_a_slot_it_did_not_give():
    slots = SlotAllocator(4)
    slots.take(1)
    with pytest.raises(RuntimeError, match="KV slot 3, which was not taken"):
        slots.give_back([3])


def test_allocator_keeps_a_growing_sequence_contiguous_beside_others():
    slots = SlotAllocator(100)
    a = slots.take(10, hold=30)  # a will add 40 tokens in all
    b = slots.take(10, hold=30)  # b starts after a's growth space, not right after a's slots
    assert a == list(range(10)) and b[0] >= 40
    for _ in range(20):  # both decode, one token a step, interleaved
        a += slots.take(1, after=a[-1])
        b += slots.take(1, after=b[-1])
    assert a == list(range(30)) and b == list(range(b[0], b[0] + 30))
    # Growth space is a preference only: with no plain free slot left, others get it.
    rest = slots.take(slots.free)
    assert sorted(a + b + rest) == list(range(100)) and slots.free == 0


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
    # before its one token, while the other grows: it ends after 1 + 7 steps, when the other has grown by 8 and
    # it by its 1, so max(11 + 99, 111 + 8 + 1) = 120.
    assert peak_kv_tokens([decoding, long_prompt]) == 113
    assert peak_kv_tokens([decoding, long_prompt], prefill_chunk_tokens=16) == 120
    scheduler = _scheduler(119, 8, 16)
    scheduler.running.append(decoding)
    scheduler.add(long_prompt)
    assert scheduler.schedule().admitted == []  # it would overflow 119 slots while it prefills


def _brute_force_peak_with_delays(entries):
    """Tokens held at each future step: ``(held, remaining, delay)`` grows one a step after ``delay`` steps."""
    end = max(delay + remaining for _, remaining, delay in entries)
    return max(
        sum(held + min(max(t - delay, 0), remaining) for held, remaining, delay in entries if delay + remaining >= t)
        for t in range(end + 1)
    )


def test_peak_estimate_with_prefill_to_come_is_never_below_the_worst_case():
    rng = random.Random(1)
    chunk = 8
    for _ in range(300):
        sequences, entries, ahead = [], [], 0
        for i in range(rng.randint(1, 10)):
            prompt, remaining = rng.randint(1, 40), rng.randint(1, 30)
            computed = rng.choice([prompt, rng.randint(0, prompt - 1)])
            sequences.append(SequenceState(i, prompt, remaining, num_computed=computed))
            if computed < prompt:
                ahead += prompt - computed
            entries.append((prompt, remaining, -(-ahead // chunk) if computed < prompt else 0))
        assert peak_kv_tokens(sequences, chunk) >= _brute_force_peak_with_delays(entries)


@pytest.mark.parametrize("chunk", [4, 16, 1024])
def test_a_request_alone_that_fits_the_capacity_exactly_is_admitted(chunk):
    scheduler = _scheduler(100, 4, chunk)
    alone = SequenceState("alone", prompt_len=60, max_new_tokens=40, prompt_ids=list(range(60)))
    scheduler.add(alone)
    assert scheduler.schedule().admitted == [alone]  # 60 + 40 = 100 slots, however many steps its prompt takes


def test_admission_is_fifo_and_the_first_that_does_not_fit_blocks_the_rest():
    scheduler = _scheduler(100, 8, 1000)
    big = SequenceState("big", prompt_len=50, max_new_tokens=30)
    large = SequenceState("large", prompt_len=40, max_new_tokens=10)  # 80 + 50 > 100 with big running
    small = SequenceState("small", prompt_len=2, max_new_tokens=2)  # would fit, but must not overtake
    for sequence in (big, large, small):
        scheduler.add(sequence)
    plan = scheduler.schedule()
    assert plan.admitted == [big]
    assert list(scheduler.waiting) == [large, small]


def test_running_requests_are_capped():
    scheduler = _scheduler(10_000, 3, 1000)
    for i in range(5):
        scheduler.add(SequenceState(i, prompt_len=4, max_new_tokens=4))
    assert [s.uid for s in scheduler.schedule().admitted] == [0, 1, 2]
    assert len(scheduler.waiting) == 2


def test_long_prompt_is_chunked_and_never_stalls_a_decode():
    scheduler = _scheduler(1000, 8, 8)
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


def _check_kv(kv: KVManager, running) -> None:
    """The KV manager's invariants, from the outside: every slot accounted for exactly once."""
    tree_slots = []
    if kv.tree is not None:
        stack = list(kv.tree.root.children.values())
        while stack:
            node = stack.pop()
            tree_slots.extend(node.slots)
            stack.extend(node.children.values())
    assert len(tree_slots) == len(set(tree_slots)) == kv.cached
    private = []
    for sequence in running:
        table = kv._tables[sequence.uid]
        assert len(table.slots) == sequence.num_computed
        private.extend(table.slots[table.num_cached :])
        if table.num_cached:  # its shared part is the tree's, on a path that is referenced (never evicted)
            path, matched = kv.tree.match(sequence.tokens, table.num_cached)
            assert matched == table.num_cached and all(node.refs > 0 for node in path)
            assert [slot for node in path for slot in node.slots][: table.num_cached] == table.slots[: table.num_cached]
        assert [run for run in table.runs] == [list(run) for run in _runs(table.slots)]
    assert len(private) == len(set(private)) and not set(private) & set(tree_slots)
    assert kv.used == kv.live() + kv.cached == len(private) + len(tree_slots)  # no padding, no reservation
    assert kv.used <= kv.capacity


def _runs(slots):
    from litserve.llm.kv import slot_runs

    return slot_runs(slots)


def _simulate(seed: int, capacity: int, max_running: int, chunk: int, count: int, prefix_caching: bool = True):
    """Run a random workload through scheduler + KV manager, checking the invariants at every step.

    Prompts share prefixes (a few system prompts, repeated whole prompts), so the cache is hit, filled,
    evicted and hit again.
    """
    rng = random.Random(seed)
    kv = KVManager(capacity, max_running, capacity, prefix_caching)
    scheduler = Scheduler(kv, max_running, chunk)
    systems = [[rng.randint(0, 50) for _ in range(rng.randint(5, 40))] for _ in range(3)]
    arrivals = []
    for i in range(count):
        prompt = rng.choice(systems) + [rng.randint(0, 50) for _ in range(rng.randint(1, 40))]
        if arrivals and rng.random() < 0.2:
            prompt = list(arrivals[-1].prompt_ids)  # the same prompt again (n > 1, a retry)
        sequence = SequenceState(i, len(prompt), rng.randint(1, 60), prompt_ids=prompt)
        sequence.tokens = list(prompt)
        arrivals.append(sequence)
    early_stop = {s.uid: rng.choice([None, rng.randint(1, s.max_new_tokens)]) for s in arrivals}
    admitted_order, finished = [], []
    pending = list(arrivals)
    found = 0
    while pending or scheduler.has_unfinished():
        for _ in range(rng.randint(0, 3)):  # arrivals while others decode
            if pending:
                scheduler.add(pending.pop(0))
        plan = scheduler.schedule()
        admitted_order.extend(s.uid for s in plan.admitted)
        found += sum(s.num_cached for s in plan.admitted)
        assert len(scheduler.running) <= max_running
        assert sum(c for _, c in plan.prefills) <= chunk
        assert all(s.prefilled for s in plan.decodes)
        assert set(plan.decodes) == {s for s in scheduler.running if s.prefilled}
        kv.allocate([(s.uid, 1) for s in plan.decodes] + [(s.uid, c) for s, c in plan.prefills])
        sampled = list(plan.decodes)
        for sequence in plan.decodes:
            sequence.num_computed += 1
        for sequence, tokens in plan.prefills:
            sequence.num_computed += tokens
            kv.cache_prompt(sequence.uid, sequence.prompt_ids, sequence.num_computed)
            if sequence.prefilled:
                sampled.append(sequence)
        _check_kv(kv, scheduler.running)
        for sequence in sampled:
            sequence.num_output += 1
            sequence.tokens.append(rng.randint(0, 50))
            if sequence.num_output in (sequence.max_new_tokens, early_stop[sequence.uid]):
                scheduler.remove(sequence)
                kv.release(sequence.uid, sequence.tokens[: sequence.num_computed])
                finished.append(sequence.uid)
        _check_kv(kv, scheduler.running)
    assert admitted_order == list(range(count))  # FIFO
    assert sorted(finished) == list(range(count))
    assert kv.used == kv.cached and kv.live() == 0
    assert kv.prompt_tokens_found == found
    return kv


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk", [4, 8, 32, 256])
def test_random_workloads_keep_slots_equal_to_live_plus_cached_and_never_overflow(seed, chunk):
    kv = _simulate(seed, capacity=300, max_running=16, chunk=chunk, count=40)
    assert kv.prompt_tokens_found > 0  # the cache was hit


@pytest.mark.parametrize("seed", range(3))
def test_without_prefix_caching_every_slot_is_free_when_all_are_done(seed):
    kv = _simulate(seed, capacity=300, max_running=16, chunk=16, count=30, prefix_caching=False)
    assert kv.used == 0 and kv.prompt_tokens_found == 0


def test_tight_capacity_runs_requests_one_by_one():
    _simulate(7, capacity=140, max_running=64, chunk=256, count=20)


def test_admission_counts_only_the_tokens_a_request_adds():
    kv = KVManager(capacity=100, max_sequences=4, max_sequence_len=100)
    scheduler = Scheduler(kv, 4, 1000)
    system = list(range(60))
    kv.admit("earlier", system + [99])  # a finished request left the 60-token system prompt in the cache
    kv.allocate([("earlier", 61)])
    kv.release("earlier", system + [99])
    users = [SequenceState(f"user{i}", 61, 10, prompt_ids=system + [90 + i]) for i in range(3)]
    for user in users:
        scheduler.add(user)
    plan = scheduler.schedule()
    # Each adds 1 prompt token + 10 generated; the 60 shared count once: 60 + 3 * 11 + ... <= 100, where
    # without sharing two of them (2 * 71) would not fit.
    assert plan.admitted == users and [u.num_cached for u in users] == [60, 60, 60]
    assert [count for _, count in plan.prefills] == [1, 1, 1]
    assert kv.pinned == 60 and kv.used == 61  # the cached leaf [99] is still there, evictable
    assert peak_kv_tokens(users) + kv.pinned <= 100


def test_a_prefix_computed_by_a_running_request_counts_once_when_others_reuse_it():
    kv = KVManager(capacity=100, max_sequences=4, max_sequence_len=100)
    scheduler = Scheduler(kv, 4, 1000)
    system = list(range(60))
    leader = SequenceState("leader", 61, 10, prompt_ids=system + [99])
    scheduler.add(leader)
    ((_, count),) = scheduler.schedule().prefills
    kv.allocate([("leader", count)])
    leader.num_computed = count
    kv.cache_prompt("leader", leader.prompt_ids, count)  # the leader's prompt is in the cache, still running
    user = SequenceState("user", 61, 10, prompt_ids=system + [90])
    scheduler.add(user)
    plan = scheduler.schedule()
    # The shared 60 count once, as pinned (60); the leader adds its 1 other prompt token and 10 more, the user
    # 1 + 10: 82 <= 100. Counting the 60 again among the leader's own (142) would keep the user waiting.
    assert plan.admitted == [user] and user.num_cached == 60
    assert kv.pinned == 60 and kv.pinned_own("leader") == 60
    kv.allocate([("leader", 1), ("user", 1)])
    scheduler.remove(leader)
    kv.release("leader", leader.prompt_ids + [7])
    assert kv.pinned == 60 and kv.pinned_own("leader") == 0  # still held, for the user
    assert kv.pinned + peak_kv_tokens(scheduler.running) <= 100


def test_a_request_sharing_a_prefix_being_computed_waits_for_it_instead_of_computing_it_twice():
    kv = KVManager(capacity=1000, max_sequences=8, max_sequence_len=1000)
    scheduler = Scheduler(kv, 8, 256)  # budget enough for every prompt in one step
    prompt = list(range(100))
    leader = SequenceState("leader", 100, 4, prompt_ids=prompt)
    copies = [SequenceState(f"copy{i}", 100, 4, prompt_ids=list(prompt)) for i in range(3)]  # n = 4
    other = SequenceState("other", 20, 4, prompt_ids=list(range(500, 520)))
    for sequence in (leader, *copies, other):
        scheduler.add(sequence)
    computed = {}
    admitted_when = {}
    for _ in range(8):
        plan = scheduler.schedule()
        for sequence in plan.admitted:
            admitted_when[sequence.uid] = leader.num_computed
        kv.allocate([(s.uid, c) for s, c in plan.prefills])
        for sequence, count in plan.prefills:
            sequence.num_computed += count
            computed[sequence.uid] = computed.get(sequence.uid, 0) + count
            kv.cache_prompt(sequence.uid, sequence.prompt_ids, sequence.num_computed)
    assert list(admitted_when) == ["leader", "copy0", "copy1", "copy2", "other"]  # FIFO still
    # The copies join once fewer than PREFIX_WAIT_TOKENS of the prompt are left to compute, and reuse the rest.
    assert all(admitted_when[c.uid] >= 100 - PREFIX_WAIT_TOKENS for c in copies)
    assert all(c.num_cached >= 100 - PREFIX_WAIT_TOKENS and computed[c.uid] < PREFIX_WAIT_TOKENS for c in copies)
    assert computed["leader"] == 100 and sum(computed.values()) < 100 + 20 + 3 * PREFIX_WAIT_TOKENS
    assert list(admitted_when.values()) == [0, 100, 100, 100, 100]  # they joined the step after the leader


def test_eviction_is_lru_over_unreferenced_leaves_and_never_touches_a_running_request():
    kv = KVManager(capacity=30, max_sequences=4, max_sequence_len=30)

    def finish(uid, tokens):
        kv.admit(uid, tokens)
        kv.allocate([(uid, len(tokens) - kv.found(uid))])
        kv.release(uid, tokens)

    finish("old", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    finish("new", [1, 2, 3, 20, 21, 22, 23, 24, 25, 26])  # shares 1, 2, 3 with old
    assert kv.cached == 17 and kv.live() == 0
    assert kv.admit("running", [1, 2, 3, 20, 21, 22, 23, 24, 25, 26, 30]) == 10  # found new's tokens
    kv.allocate([("running", 1)])
    # 30 slots: 17 cached + 1 running; 19 more must evict old's own 7 (the unreferenced leaf) and no more.
    kv.admit("big", list(range(100, 120)))
    kv.allocate([("big", 19)])
    path, matched = kv.tree.match([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10)
    assert matched == 3  # old's own tokens are gone, the shared 1, 2, 3 stay (running's path)
    assert kv.tree.match([1, 2, 3, 20, 21, 22, 23, 24, 25, 26], 10)[1] == 10
    assert kv.used == kv.live() + kv.cached == 30 and kv.cached == 10
    with pytest.raises(OutOfSlotsError):
        kv.allocate([("big", 1)])  # running's slots are never evicted: none left to take


def test_the_least_recently_used_prefix_is_evicted_first():
    kv = KVManager(capacity=12, max_sequences=2, max_sequence_len=12)

    def run(uid, tokens):
        found = kv.admit(uid, tokens)
        kv.allocate([(uid, len(tokens) - found)])
        kv.release(uid, tokens)
        return found

    run("a", [1, 2, 3, 4])
    run("b", [5, 6, 7, 8])
    assert run("a again", [1, 2, 3, 4, 9]) == 4  # a is used again: b is now the least recently used
    kv.admit("c", [20, 21, 22, 23, 24])
    kv.allocate([("c", 5)])  # 9 cached + 5 > 12: b's 4 go first
    assert kv.tree.match([5, 6, 7, 8], 4)[1] == 0
    assert kv.tree.match([1, 2, 3, 4, 9], 5)[1] == 5


def test_cli_llmapi_and_engine_share_one_default_prefill_chunk():
    import inspect

    from litserve.llm.api import LLMAPI
    from litserve.llm.cli import llm
    from litserve.llm.engine import LLMEngine
    from litserve.llm.scheduler import PREFILL_CHUNK_TOKENS

    for function in (llm, LLMAPI.__init__, LLMEngine.__init__, Scheduler.__init__):
        assert inspect.signature(function).parameters["prefill_chunk_tokens"].default == PREFILL_CHUNK_TOKENS
