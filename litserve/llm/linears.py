"""How a transformers model's ``nn.Linear`` layers run on CPU in float32: fused where they share an input,
through oneDNN's prepacked layout but for a single row and a small weight.

- Projections that read the same input (``q_proj``/``k_proj``/``v_proj`` of an attention, ``gate_proj``/
  ``up_proj`` of a gated MLP) become one matmul over their concatenated weights; each module still returns its
  own part, so the model's code is unchanged. One call instead of three streams the same weights with one
  call's overhead and a wider product (measured for a 1024-wide model at 4 rows: 667 us for the fused
  3072x1024 against 3 x 276 us).
- Every weight goes through oneDNN with a prepacked (blocked) copy: a decode step multiplies a few rows by
  every weight, read from memory rather than cache (a model's weights pass through a core's cache once a step),
  and oneDNN streams them faster than the plain matmul (1024x1024 at 16 rows: 472 against 778 us). Measured
  on the 2-core machine over the 17 weights of a 256-wide, 4-layer model (11 MB) in turn: 4 rows 640-770 us
  packed against 1,700 plain, 16 rows 1,300-1,640 against 2,060-2,600; its decode steps for 16 sequences
  4.4-7.1 ms against 5.4-7.3 (medians of four runs each, alternated).
- A oneDNN call costs about 35 us of its own, more than a small weight's product with a single row takes, so
  a weight under ``SMALL_WEIGHT_ELEMENTS`` keeps its plain copy too and a single row (one decoding sequence)
  goes through that: 17 small weights at one row 420 us plain against 570-920 packed.

Weights are replaced, not copied (the model holds a second copy of its small ones only); a weight shared with
an embedding (tied embeddings) is left as it is.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch

SMALL_WEIGHT_ELEMENTS = 512 * 1024
PLAIN_MAX_ROWS = 1
FUSED_GROUPS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


class _Matmul:
    """``inputs @ weight.T + bias`` for a weight taken over from the model: through oneDNN's packed copy, or
    the plain weight for a single row where the weight is small."""

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
        self.bias = bias
        self.packed = None
        self.weight: Optional[torch.Tensor] = weight
        try:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, 64)
        except (RuntimeError, AttributeError):  # a torch built without oneDNN's linear
            return
        if weight.numel() >= SMALL_WEIGHT_ELEMENTS:
            self.weight = None

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        rows = inputs.numel() // inputs.shape[-1]
        if self.packed is not None and (self.weight is None or rows > PLAIN_MAX_ROWS):
            return torch.ops.mkldnn._linear_pointwise(inputs, self.packed, self.bias, "none", [], "")
        return torch.nn.functional.linear(inputs, self.weight, self.bias)


class _FusedProjections:
    """One matmul for several linear layers reading the same input; each layer's forward returns its part."""

    def __init__(self, linears: Sequence[torch.nn.Linear]) -> None:
        weight = torch.cat([linear.weight.detach() for linear in linears])
        bias = None
        if linears[0].bias is not None:
            bias = torch.cat([linear.bias.detach() for linear in linears])
        self.matmul = _Matmul(weight, bias)
        self.sizes = [linear.out_features for linear in linears]
        self._inputs: Optional[torch.Tensor] = None
        self._parts: List[torch.Tensor] = []
        self._served = 0

    def part(self, index: int, inputs: torch.Tensor) -> torch.Tensor:
        if inputs is not self._inputs:  # the first of the group to be called with this input computes all
            self._parts = list(self.matmul(inputs).split(self.sizes, dim=-1))
            self._inputs, self._served = inputs, 0
        result = self._parts[index]
        self._served += 1
        if self._served == len(self.sizes):  # all served: hold no activations until the next call
            self._inputs, self._parts = None, []
        return result


def _own_linear(module: torch.nn.Module, shared: set) -> bool:
    return (
        type(module) is torch.nn.Linear
        and module.weight is not None
        and module.weight.dtype == torch.float32
        and module.weight.device.type == "cpu"
        and id(module.weight) not in shared
    )


def _take_over(module: torch.nn.Linear, forward) -> None:
    module.register_parameter("weight", None)
    module.register_parameter("bias", None)
    module.forward = forward


def _fuse_groups(model: torch.nn.Module, shared: set) -> int:
    fused = 0
    for parent in model.modules():
        for names in FUSED_GROUPS:
            linears = [getattr(parent, name, None) for name in names]
            if not all(linear is not None and _own_linear(linear, shared) for linear in linears):
                continue
            if len({linear.in_features for linear in linears}) != 1:
                continue
            if len({linear.bias is None for linear in linears}) != 1:
                continue
            group = _FusedProjections(linears)
            for index, linear in enumerate(linears):
                _take_over(linear, lambda inputs, _index=index, _group=group: _group.part(_index, inputs))
            fused += len(linears)
    return fused


def prepare_cpu_linears(model: torch.nn.Module) -> int:
    """Fuse and pack the model's float32 CPU ``nn.Linear`` layers as the module docstring says; returns how many
    layers now run through this module (0 on other devices and dtypes)."""
    shared = {id(module.weight) for module in model.modules() if isinstance(module, torch.nn.Embedding)}
    prepared = _fuse_groups(model, shared)
    for module in model.modules():
        if _own_linear(module, shared):
            matmul = _Matmul(module.weight.detach(), None if module.bias is None else module.bias.detach())
            _take_over(module, matmul)
            prepared += 1
    return prepared
