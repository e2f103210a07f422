"""A BERT-style text encoder built from a config with seeded weights, shared by the GPU benchmark's server
and its model-alone measurement so both time the same model.

Token and position embeddings, a stack of post-norm transformer encoder layers (GELU), and a BERT-style
pooler (tanh of a linear layer over the first token). Nothing is downloaded: the weights are random but
seeded, which is all a throughput measurement needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of the encoder and of its input."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    seq_len: int


PRESETS = {
    # BERT-large sizes at 512 tokens: about 340 GFLOP per sample, enough for the GPU to be the bottleneck.
    "large": EncoderConfig(vocab_size=30522, hidden=1024, layers=24, heads=16, ffn=4096, seq_len=512),
    # BERT-base sizes at 128 tokens.
    "base": EncoderConfig(vocab_size=30522, hidden=768, layers=12, heads=12, ffn=3072, seq_len=128),
    # For a smoke test on a CPU.
    "tiny": EncoderConfig(vocab_size=1000, hidden=64, layers=2, heads=2, ffn=128, seq_len=32),
}

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


class Encoder(nn.Module):
    """Token ids (batch, seq_len) -> pooled embedding (batch, hidden)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab_size, config.hidden)
        self.positions = nn.Embedding(config.seq_len, config.hidden)
        self.norm = nn.LayerNorm(config.hidden)
        layer = nn.TransformerEncoderLayer(
            config.hidden, config.heads, config.ffn, dropout=0.0, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.pooler = nn.Linear(config.hidden, config.hidden)

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(token_ids.shape[1], device=token_ids.device)
        hidden = self.norm(self.tokens(token_ids) + self.positions(positions))
        hidden = self.encoder(hidden)
        return torch.tanh(self.pooler(hidden[:, 0]))


def build_encoder(config: EncoderConfig, device: str, dtype: torch.dtype) -> Encoder:
    """The seeded encoder on ``device`` in ``dtype``, in eval mode."""
    torch.manual_seed(0)
    return Encoder(config).to(device=device, dtype=dtype).eval()


def sample_tokens(config: EncoderConfig, batch_size: int) -> torch.Tensor:
    """Deterministic token ids of shape (batch_size, seq_len)."""
    generator = torch.Generator().manual_seed(1)
    return torch.randint(0, config.vocab_size, (batch_size, config.seq_len), generator=generator)
