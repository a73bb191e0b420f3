"""Model size and cost: parameter count and GFLOPs (``torch.utils.flop_counter``).

GFLOPs = FLOPs / 1e9 at batch 1, where one multiply-add counts as 2 FLOPs (flop_counter's
convention; halve it for "GMACs"). Only ops flop_counter knows (convs, matmuls, ...) are counted;
pooling, BN, activations and interpolation are not, as in most published FLOP tables.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all of them, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _validate_size(height, width, in_channels) -> None:
    for key, value in (("height", height), ("width", width), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")


def _count(model: nn.Module, height: int, width: int, in_channels: int) -> FlopCounterMode:
    """Run one batch-1 forward (eval, no grad) under a FlopCounterMode and return the counter."""
    _validate_size(height, width, in_channels)
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    x = torch.zeros(1, in_channels, height, width, device=device, dtype=dtype)
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return counter


def count_gflops(
    model: nn.Module, height: int = 473, width: int = 473, in_channels: int = 3
) -> float:
    """GFLOPs of one forward pass on a 1 x in_channels x height x width input (eval, no grad)."""
    return _count(model, height, width, in_channels).get_total_flops() / 1e9


def gflops_by_module(
    model: nn.Module, height: int = 473, width: int = 473, in_channels: int = 3
) -> dict[str, float]:
    """GFLOPs per submodule, keyed by qualified name ("stem", "stages.0", "aspp", ...)."""
    counts = _count(model, height, width, in_channels).get_flop_counts()
    out = {}
    for key, per_op in counts.items():
        name = key.partition(".")[2]  # keys are "<RootClass>.<qualified name>"
        if name:
            out[name] = sum(per_op.values()) / 1e9
    return out
