"""The benchmark MLP, shared by ``litserve_mlp.py`` and ``model_alone.py`` so both time the same model."""

from __future__ import annotations

import torch
from torch import nn

LAYER_SIZES = (64, 2048, 2048, 2048, 10)
INPUT_DIM = LAYER_SIZES[0]
OUTPUT_DIM = LAYER_SIZES[-1]


def build_mlp() -> nn.Module:
    """Return the seeded MLP 64 -> 2048 -> 2048 -> 2048 -> 10 (ReLU between layers) in eval mode."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    pairs = list(zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]))
    for index, (fan_in, fan_out) in enumerate(pairs):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(pairs) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


def sample_batch(batch_size: int) -> torch.Tensor:
    """Return a deterministic float32 input batch of shape (batch_size, 64)."""
    generator = torch.Generator().manual_seed(1)
    return torch.randn(batch_size, INPUT_DIM, generator=generator)
