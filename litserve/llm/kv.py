"""Token-level KV memory (LightLLM's Token Attention): one slot per token, no padding, no reservation.

``TokenSlotAllocator`` hands out and takes back slot indices; ``KVPools`` holds, per layer, one preallocated
key pool and one value pool of ``capacity`` slots that the attention function reads and writes by index.
"""

from __future__ import annotations

import torch


class OutOfSlotsError(RuntimeError):
    """More slots were asked for than are free; admission should have prevented it."""


class TokenSlotAllocator:
    """A free list of ``capacity`` slot indices, taken and given back per token.

    Example:
        >>> slots = TokenSlotAllocator(8)
        >>> taken = slots.take(3)
        >>> slots.used, slots.free
        (3, 5)
        >>> slots.give_back(taken)
        >>> slots.used
        0
    """

    def __init__(self, capacity: int, device: str | torch.device = "cpu") -> None:
        if capacity < 1:
            raise ValueError(f"KV capacity must be at least 1 token, got {capacity}")
        self.capacity = capacity
        # A stack: the free slots are _free_stack[:_num_free]; take pops from the top, give_back pushes.
        self._free_stack = torch.arange(capacity - 1, -1, -1, dtype=torch.long, device=device)
        self._num_free = capacity

    @property
    def free(self) -> int:
        return self._num_free

    @property
    def used(self) -> int:
        return self.capacity - self._num_free

    def take(self, count: int) -> torch.Tensor:
        """Return ``count`` free slot indices (a new 1-D long tensor) and mark them used."""
        if count > self._num_free:
            raise OutOfSlotsError(f"asked for {count} KV slots, only {self._num_free} of {self.capacity} free")
        start = self._num_free - count
        taken = self._free_stack[start : self._num_free].clone()
        self._num_free = start
        return taken

    def give_back(self, slots: torch.Tensor) -> None:
        """Mark ``slots`` free again."""
        count = slots.numel()
        if count == 0:
            return
        if self._num_free + count > self.capacity:
            raise RuntimeError("gave back more KV slots than were taken")
        self._free_stack[self._num_free : self._num_free + count] = slots.to(self._free_stack.device)
        self._num_free += count


class KVPools:
    """Per layer, a key pool and a value pool of shape ``[capacity, num_kv_heads, head_dim]``."""

    def __init__(
        self,
        num_layers: int,
        capacity: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: str | torch.device,
    ) -> None:
        shape = (capacity, num_kv_heads, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(num_layers)]

    @staticmethod
    def bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        """Memory one token slot takes across all layers (keys and values)."""
        return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()
