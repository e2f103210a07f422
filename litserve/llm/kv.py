"""The KV manager: one owner for the token-level KV memory (LightLLM's Token Attention, SGLang's RadixAttention).

- ``SlotAllocator`` hands out pool slots, one per token, and keeps each sequence's slots contiguous where it
  can (a sequence grows into the free slots right after its last one), so attention reads long runs of the
  pools in place instead of gathering them.
- ``RadixCache`` is the prefix tree: token ids to the slots holding their keys and values. Slots of finished
  requests stay in it until the space is needed; unreferenced leaves are evicted least recently used first;
  a node on the path of a running request is referenced and never evicted.
- ``KVManager`` holds the allocator, the tree and every admitted sequence's slot table; the scheduler asks it
  what a request would reuse, and the engine asks it for slots, to cache computed tokens and to release.
- ``KVPools`` holds, per layer, the preallocated key and value pools the attention reads and writes by slot.

Accounting: ``used == live + cached``, where live are slots held only by running sequences and cached are the
slots in the tree (some referenced by running sequences, the rest evictable).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

import torch

_FREE, _USED, _HELD = 0, 1, 2  # _HELD: free, but kept for the growth of the sequence just before it


class OutOfSlotsError(RuntimeError):
    """More slots were asked for than are free; admission should have prevented it."""


def slot_runs(slots: Sequence[int]) -> List[Tuple[int, int]]:
    """``slots`` as ``(start, length)`` runs of consecutive slots, in order.

    Example:
        >>> slot_runs([4, 5, 6, 9, 2, 3])
        [(4, 3), (9, 1), (2, 2)]
    """
    runs: List[Tuple[int, int]] = []
    start = previous = None
    for slot in slots:
        if previous is not None and slot == previous + 1:
            previous = slot
            continue
        if start is not None:
            runs.append((start, previous - start + 1))
        start = previous = slot
    if start is not None:
        runs.append((start, previous - start + 1))
    return runs


class SlotAllocator:
    """``capacity`` token slots; ``take`` prefers the slots right after a sequence's last one.

    A fresh sequence starts in the first free stretch long enough for what it will add and marks the rest of
    that stretch as held for its growth; held slots still count as free and are given to others only when no
    plain free slot is left, so contiguity is a preference, never a reservation.

    Example:
        >>> slots = SlotAllocator(8)
        >>> slots.take(3)
        [0, 1, 2]
        >>> slots.take(2, after=2)
        [3, 4]
        >>> slots.give_back([0, 1, 2, 3, 4]); slots.used
        0
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"KV capacity must be at least 1 token, got {capacity}")
        self.capacity = capacity
        self._state = bytearray(capacity)
        self._num_free = capacity

    @property
    def free(self) -> int:
        return self._num_free

    @property
    def used(self) -> int:
        return self.capacity - self._num_free

    def take(self, count: int, after: Optional[int] = None, hold: int = 0) -> List[int]:
        """``count`` free slots, ascending runs; after slot ``after`` if those are free, else a new stretch.

        ``hold`` more slots past the new stretch are kept for this sequence's growth when there is room.
        """
        if count > self._num_free:
            raise OutOfSlotsError(f"asked for {count} KV slots, only {self._num_free} of {self.capacity} free")
        if count == 0:
            return []
        state = self._state
        start = -1
        if after is not None and after + count < self.capacity:
            if _USED not in state[after + 1 : after + 1 + count]:
                start = after + 1
        if start < 0:
            for wanted in (count + hold, count) if hold else (count,):
                start = state.find(bytes(wanted))
                if start >= 0:
                    end = min(self.capacity, start + wanted)
                    state[start + count : end] = bytes([_HELD]) * (end - start - count)
                    break
        if start >= 0:
            state[start : start + count] = bytes([_USED]) * count
            self._num_free -= count
            return list(range(start, start + count))
        return self._take_scattered(count)

    def _take_scattered(self, count: int) -> List[int]:
        state = self._state
        taken: List[int] = []
        for kind in (_FREE, _HELD):
            position = 0
            while len(taken) < count:
                position = state.find(kind, position)
                if position < 0:
                    break
                state[position] = _USED
                taken.append(position)
        if len(taken) < count:  # cannot happen while _num_free is right
            raise RuntimeError("KV slot accounting is broken")
        taken.sort()
        self._num_free -= count
        return taken

    def give_back(self, slots: Sequence[int]) -> None:
        """Mark ``slots`` free again."""
        state = self._state
        for slot in slots:
            if state[slot] != _USED:
                raise RuntimeError(f"gave back KV slot {slot}, which was not taken")
            state[slot] = _FREE
        self._num_free += len(slots)

    def drop_hold(self, after: int) -> None:
        """The sequence whose last slot is ``after`` has ended: its held slots become plain free ones."""
        state = self._state
        position = after + 1
        while position < self.capacity and state[position] == _HELD:
            state[position] = _FREE
            position += 1


class _Node:
    __slots__ = ("key", "slots", "children", "parent", "refs", "pins", "owner", "last_used")

    def __init__(
        self, key: List[int], slots: List[int], parent: Optional[_Node], owner: Optional[Hashable] = None
    ) -> None:
        self.key = key
        self.slots = slots
        self.children: Dict[int, _Node] = {}
        self.parent = parent
        self.refs = 0  # running sequences whose path goes through this node: never evicted while > 0
        self.pins = 0  # of those, sequences that found it in the cache when admitted (admission accounting)
        self.owner = owner  # the running sequence that computed these tokens (they count among its own)
        self.last_used = 0


def _common_length(key: List[int], tokens: Sequence[int], offset: int) -> int:
    """How many of ``key``'s tokens equal ``tokens[offset:]``'s first ones."""
    end = min(len(key), len(tokens) - offset)
    if key[:end] == list(tokens[offset : offset + end]):
        return end
    for i in range(end):
        if key[i] != tokens[offset + i]:
            return i
    return end


class RadixCache:
    """The prefix tree over KV slots: a path from the root spells token ids, its nodes hold their slots."""

    def __init__(self) -> None:
        self.root = _Node([], [], None)
        self.root.refs = 1  # never evicted
        self.size = 0  # slots in the tree
        self.referenced = 0  # slots on some running sequence's path
        self.pinned = 0  # slots on some sequence's admission match
        self.pinned_owned: Dict[Hashable, int] = {}  # of those, the slots each running sequence computed itself
        self._clock = 0

    @property
    def evictable(self) -> int:
        return self.size - self.referenced

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def match(self, tokens: Sequence[int], limit: int) -> Tuple[List[_Node], int]:
        """The nodes of the longest cached prefix of ``tokens[:limit]`` and its length (the last may be partial)."""
        path: List[_Node] = []
        node, matched = self.root, 0
        while matched < limit:
            child = node.children.get(tokens[matched])
            if child is None:
                break
            common = _common_length(child.key, tokens[:limit], matched)
            path.append(child)
            matched += common
            if common < len(child.key):
                break
            node = child
        return path, matched

    def unpinned_length(self, tokens: Sequence[int], limit: int) -> Tuple[int, int, Dict[Hashable, int]]:
        """``(cached, newly_pinned, newly_pinned_owned)``: the prefix found, how much of it no admitted sequence
        pins yet, and of that, how much each running sequence computed itself."""
        path, matched = self.match(tokens, limit)
        fresh, covered = 0, 0
        owned: Dict[Hashable, int] = {}
        for node in path:
            length = min(len(node.key), matched - covered)
            if node.pins == 0:
                fresh += length
                if node.owner is not None:
                    owned[node.owner] = owned.get(node.owner, 0) + length
            covered += length
        return matched, fresh, owned

    def lookup(self, tokens: Sequence[int], limit: int) -> Tuple[_Node, List[int]]:
        """The deepest node of the longest cached prefix (split to end exactly there) and the prefix's slots."""
        path, matched = self.match(tokens, limit)
        slots: List[int] = []
        now = self._tick()
        covered = 0
        node = self.root
        for child in path:
            length = matched - covered
            if length < len(child.key):
                child = self._split(child, length)
            slots.extend(child.slots)
            covered += len(child.key)
            child.last_used = now
            node = child
        return node, slots

    def insert(
        self, tokens: Sequence[int], slots: Sequence[int], owner: Optional[Hashable] = None
    ) -> Tuple[_Node, int]:
        """Cache ``tokens`` with their ``slots``; returns the last node and how many leading tokens were cached.

        The tokens not cached before are ``owner``'s until ``disown``.

        The caller owns ``slots[prefix:]`` no more (the tree does); ``slots[:prefix]`` are duplicates of what the
        tree held already (or the very same slots): the caller frees those that differ.
        """
        node, position = self.root, 0
        now = self._tick()
        length = len(tokens)
        while position < length:
            child = node.children.get(tokens[position])
            if child is None:
                leaf = _Node(list(tokens[position:]), list(slots[position:]), node, owner)
                leaf.last_used = now
                node.children[tokens[position]] = leaf
                self.size += len(leaf.key)
                return leaf, position
            common = _common_length(child.key, tokens, position)
            if common < len(child.key):
                child = self._split(child, common)
            child.last_used = now
            node = child
            position += common
        return node, length

    def _split(self, node: _Node, at: int) -> _Node:
        """Cut ``node`` after ``at`` tokens; returns the new upper part (the lower keeps ``node``'s children)."""
        upper = _Node(node.key[:at], node.slots[:at], node.parent, node.owner)
        upper.refs, upper.pins, upper.last_used = node.refs, node.pins, node.last_used
        node.parent.children[upper.key[0]] = upper
        node.key, node.slots, node.parent = node.key[at:], node.slots[at:], upper
        upper.children[node.key[0]] = node
        return upper

    def reference(self, node: _Node, delta: int) -> None:
        """Add ``delta`` (1 or -1) to the references of ``node`` and every node above it."""
        while node is not self.root:
            if node.refs == 0 or node.refs + delta == 0:
                self.referenced += delta * len(node.key)
            node.refs += delta
            node = node.parent

    def pin(self, node: _Node, delta: int) -> None:
        """Add ``delta`` (1 or -1) to the pins of ``node`` and every node above it."""
        while node is not self.root:
            if node.pins == 0 or node.pins + delta == 0:
                self.pinned += delta * len(node.key)
                if node.owner is not None:
                    self._count_owned(node.owner, delta * len(node.key))
            node.pins += delta
            node = node.parent

    def disown(self, node: _Node, owner: Hashable) -> None:
        """``owner`` finished: the tokens it cached, on the path up from ``node``, are no longer its own."""
        while node is not self.root:
            if node.owner == owner:
                node.owner = None
            node = node.parent
        self.pinned_owned.pop(owner, None)

    def _count_owned(self, owner: Hashable, delta: int) -> None:
        total = self.pinned_owned.get(owner, 0) + delta
        if total:
            self.pinned_owned[owner] = total
        else:
            del self.pinned_owned[owner]

    def evict(self, count: int) -> List[int]:
        """Remove unreferenced leaves, least recently used first, until ``count`` slots are freed (or none left)."""
        leaves = [node for node in self._nodes() if not node.children and node.refs == 0]
        leaves.sort(key=lambda node: node.last_used)
        freed: List[int] = []
        while leaves and len(freed) < count:
            leaf = leaves.pop(0)
            freed.extend(leaf.slots)
            parent = leaf.parent
            del parent.children[leaf.key[0]]
            self.size -= len(leaf.key)
            if parent is not self.root and not parent.children and parent.refs == 0:
                index = 0
                while index < len(leaves) and leaves[index].last_used <= parent.last_used:
                    index += 1
                leaves.insert(index, parent)
        return freed

    def _nodes(self) -> List[_Node]:
        nodes, stack = [], list(self.root.children.values())
        while stack:
            node = stack.pop()
            nodes.append(node)
            stack.extend(node.children.values())
        return nodes


@dataclass(eq=False)
class _Table:
    """One admitted sequence's slots: ``slots[:num_cached]`` belong to the tree, the rest to it alone."""

    row: int
    slots: List[int] = field(default_factory=list)
    runs: List[List[int]] = field(default_factory=list)  # [start, length] runs of ``slots``
    num_cached: int = 0
    found: int = 0  # prompt tokens found in the cache at admission
    node: Optional[_Node] = None  # deepest tree node of ``slots[:num_cached]``, referenced by this sequence
    pin: Optional[_Node] = None  # the node matched at admission, pinned by this sequence
    hold: int = 0  # tokens it may still add (how far its growth space should reach)
    prefilling: Optional[Sequence[int]] = None  # its prompt, while some of it is not cached yet


class KVManager:
    """Slot tables, allocation, freeing and the prefix tree of every admitted sequence, with plain inputs.

    Args:
        capacity: token slots in all.
        max_sequences: most sequences admitted at once (rows of ``slot_table``).
        max_sequence_len: most tokens of one sequence.
        enable_prefix_caching: keep computed tokens in a prefix tree and reuse them (else free at once).
        device: where ``slot_table`` lives (the pools' device).

    Example:
        >>> kv = KVManager(capacity=64, max_sequences=4, max_sequence_len=32)
        >>> kv.admit("a", [1, 2, 3, 4])
        0
        >>> slots = kv.allocate([("a", 4)]); kv.cache_prompt("a", [1, 2, 3, 4], 4)
        >>> kv.release("a", [1, 2, 3, 4, 9])
        >>> kv.admit("b", [1, 2, 3, 7])  # b reuses a's first three tokens
        3
    """

    def __init__(
        self,
        capacity: int,
        max_sequences: int,
        max_sequence_len: int,
        enable_prefix_caching: bool = True,
        device: str | torch.device = "cpu",
    ) -> None:
        self.capacity = capacity
        self.allocator = SlotAllocator(capacity)
        self.tree: Optional[RadixCache] = RadixCache() if enable_prefix_caching else None
        self.max_sequence_len = max_sequence_len
        self.slot_table = torch.zeros((max_sequences, max_sequence_len), dtype=torch.long, device=device)
        self._free_rows = list(range(max_sequences - 1, -1, -1))
        self._tables: Dict[Hashable, _Table] = {}
        self.prompt_tokens_queried = 0  # prompt tokens of admitted requests looked up in the cache
        self.prompt_tokens_found = 0  # of those, found there (not computed again)

    # ----- what admission asks (the scheduler) --------------------------------------------------------

    @property
    def prefix_caching(self) -> bool:
        return self.tree is not None

    @property
    def used(self) -> int:
        return self.allocator.used

    @property
    def cached(self) -> int:
        """Slots in the prefix tree (referenced by running sequences or evictable)."""
        return self.tree.size if self.tree else 0

    @property
    def pinned(self) -> int:
        """Slots of the cached prefixes admitted sequences found: not counted in their own tokens."""
        return self.tree.pinned if self.tree else 0

    def pinned_own(self, uid: Hashable) -> int:
        """Of the pinned slots, those ``uid`` (running) computed itself: counted in ``pinned``, not again in its
        own tokens."""
        return self.tree.pinned_owned.get(uid, 0) if self.tree else 0

    @property
    def evictable(self) -> int:
        """Slots of the prefix tree no running sequence uses: free as soon as the space is needed."""
        return self.tree.evictable if self.tree else 0

    def admission_cost(self, prompt_ids: Sequence[int]) -> Tuple[int, int, Dict[Hashable, int]]:
        """``(cached, newly_pinned, newly_pinned_own)`` if this prompt were admitted now: tokens reused, cache
        newly pinned, and of that what each running sequence computed itself (see ``pinned_own``)."""
        if self.tree is None:
            return 0, 0, {}
        return self.tree.unpinned_length(prompt_ids, len(prompt_ids) - 1)

    def prefix_in_flight(self, prompt_ids: Sequence[int], cached: int, at_least: int) -> bool:
        """Whether an admitted sequence is computing at least ``at_least`` more tokens of this prompt than are cached.

        Such a request is better admitted once those tokens are in the cache (the ``n`` choices of a request,
        users sending the same system prompt at once) than computed twice.
        """
        if self.tree is None:
            return False
        wanted = list(prompt_ids[: len(prompt_ids) - 1])
        for table in self._tables.values():
            if table.prefilling is not None and _common_length(wanted, table.prefilling, 0) - cached >= at_least:
                return True
        return False

    # ----- admitting, and what a step asks (the engine) ----------------------------------------------

    def admit(self, uid: Hashable, prompt_ids: Sequence[int], will_add: Optional[int] = None) -> int:
        """Give ``uid`` a slot table holding its longest cached prefix; returns that prefix's length.

        ``will_add`` is how many tokens it may add in all (prompt rest and output), where growth space goes.
        """
        if uid in self._tables:
            raise ValueError(f"sequence {uid!r} is already admitted")
        if not self._free_rows:
            raise RuntimeError("no slot table row is free; admission should have prevented it")
        table = _Table(row=self._free_rows.pop())
        if self.tree is not None:
            node, slots = self.tree.lookup(prompt_ids, len(prompt_ids) - 1)
            if slots:
                self.tree.reference(node, 1)
                self.tree.pin(node, 1)
                table.node = table.pin = node
                table.slots = slots
                table.num_cached = len(slots)
                table.runs = [list(run) for run in slot_runs(slots)]
                self.slot_table[table.row, : len(slots)] = torch.tensor(slots, dtype=torch.long)
            table.prefilling = prompt_ids
        table.found = table.num_cached
        table.hold = will_add if will_add is not None else len(prompt_ids) - table.num_cached
        self.prompt_tokens_queried += len(prompt_ids)
        self.prompt_tokens_found += table.num_cached
        self._tables[uid] = table
        return table.num_cached

    def allocate(self, requests: List[Tuple[Hashable, int]]) -> torch.Tensor:
        """Slots for each ``(uid, count)``'s next tokens, in order, as one tensor; evicts cached leaves if needed."""
        needed = sum(count for _, count in requests)
        if needed > self.allocator.free and self.tree is not None:
            self.allocator.give_back(self.tree.evict(needed - self.allocator.free))
        taken: List[int] = []
        for uid, count in requests:
            table = self._tables[uid]
            last = table.slots[-1] if table.slots else None
            slots = self.allocator.take(count, after=last, hold=max(0, table.hold - count))
            table.hold -= count
            start = len(table.slots)
            if start + count > self.max_sequence_len:
                raise RuntimeError(f"sequence {uid!r} outgrew its slot table")
            self.slot_table[table.row, start : start + count] = torch.tensor(slots, dtype=torch.long)
            table.slots.extend(slots)
            _extend_runs(table.runs, slots)
            taken.extend(slots)
        return torch.tensor(taken, dtype=torch.long, device=self.slot_table.device)

    def cache_prompt(self, uid: Hashable, prompt_ids: Sequence[int], computed: int) -> None:
        """The first ``computed`` prompt tokens of ``uid`` are in the pools: put them in the tree for others."""
        table = self._tables[uid]
        if self.tree is None or computed <= table.num_cached:
            return
        self._insert(uid, table, prompt_ids[:computed])
        if computed >= len(prompt_ids):
            table.prefilling = None

    def release(self, uid: Hashable, token_ids: Sequence[int]) -> None:
        """``uid`` finished or was cancelled; ``token_ids`` are its tokens whose slots are filled, in order.

        With prefix caching they stay in the tree (evictable); without, every slot is free at once.
        """
        table = self._tables.pop(uid, None)
        if table is None:
            return
        if table.slots:
            self.allocator.drop_hold(table.slots[-1])
        if self.tree is not None:
            filled = min(len(token_ids), len(table.slots))
            if filled > table.num_cached:
                self._insert(uid, table, token_ids[:filled])
            private = table.slots[table.num_cached :]
            if table.node is not None:
                self.tree.disown(table.node, uid)
                self.tree.reference(table.node, -1)
            if table.pin is not None:
                self.tree.pin(table.pin, -1)
        else:
            private = table.slots
        self.allocator.give_back(private)
        self._free_rows.append(table.row)

    def runs(self, uid: Hashable) -> List[List[int]]:
        """``[start, length]`` runs of ``uid``'s slots in order (attention reads each run in place)."""
        return self._tables[uid].runs

    def row(self, uid: Hashable) -> int:
        return self._tables[uid].row

    def found(self, uid: Hashable) -> int:
        """Prompt tokens ``uid`` found in the cache when admitted."""
        return self._tables[uid].found

    def live(self) -> int:
        """Slots held by running sequences alone (not in the tree)."""
        return sum(len(table.slots) - table.num_cached for table in self._tables.values())

    # ----- internals -----------------------------------------------------------------------------------

    def _insert(self, uid: Hashable, table: _Table, tokens: Sequence[int]) -> None:
        tree = self.tree
        node, prefix = tree.insert(tokens, table.slots[: len(tokens)], owner=uid)
        if prefix > table.num_cached:  # someone else computed these tokens first: use theirs, free ours
            _, existing = tree.lookup(tokens, prefix)
            mine = table.slots[table.num_cached : prefix]
            duplicates = [ours for ours, theirs in zip(mine, existing[table.num_cached :]) if ours != theirs]
            if duplicates:
                self.allocator.give_back(duplicates)
                table.slots[:prefix] = existing
                self.slot_table[table.row, :prefix] = torch.tensor(existing, dtype=torch.long)
                table.runs = [list(run) for run in slot_runs(table.slots)]
        tree.reference(node, 1)
        if table.node is not None:
            tree.reference(table.node, -1)
        table.node = node
        table.num_cached = len(tokens)


def _extend_runs(runs: List[List[int]], slots: List[int]) -> None:
    for start, length in slot_runs(slots):
        if runs and runs[-1][0] + runs[-1][1] == start:
            runs[-1][1] += length
        else:
            runs.append([start, length])


class KVPools:
    """Per layer, a key pool and a value pool of shape ``[num_kv_heads, capacity, head_dim]``.

    Head-major: a sequence's keys for one head over a run of slots are one contiguous block, so the decode
    attention reads a long run in place at memory speed (about twice as fast on CPU as slot-major, where each
    head's keys are strided by the other heads').
    """

    def __init__(
        self,
        num_layers: int,
        capacity: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: str | torch.device,
    ) -> None:
        shape = (num_kv_heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    @staticmethod
    def bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        """Memory one token slot takes across all layers (keys and values)."""
        return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()
