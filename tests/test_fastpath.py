"""Batch-norm folding: only conv outputs with no other user are folded; untraceable models are
folded inside their traceable children (the per-model parity is in test_model_contract.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm, make_fast
from tiny import randomise_batchnorm


class SharedConvOutput(nn.Module):
    """conv -> bn, but the conv output is also added back: folding that BN would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn2(self.conv2(self.bn(y) + y))


def test_fold_skips_conv_outputs_with_other_users():
    model = randomise_batchnorm(SharedConvOutput())
    folded = fold_batchnorm(model)
    assert isinstance(folded.bn, nn.BatchNorm2d)  # kept: y is used twice
    assert isinstance(folded.bn2, nn.Identity)  # folded into conv2
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


class UntraceableBranch(nn.Module):
    """Python control flow on the input size: fx cannot trace the whole, only the children."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())

    def forward(self, x):
        if x.shape[-1] % 2:
            x = nn.functional.pad(x, (0, 1))
        return self.body(x)


def test_fold_recurses_into_children_when_the_model_cannot_be_traced():
    model = randomise_batchnorm(UntraceableBranch())
    with pytest.raises(Exception):  # noqa: B017 - fx raises TraceError (type differs by version)
        torch.fx.symbolic_trace(model)
    folded = fold_batchnorm(model)
    assert count_batchnorm(folded) == 0
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_make_fast_rejects_unknown_compile_mode():
    with pytest.raises(ValueError, match="compile_mode='fastest'"):
        make_fast(nn.Conv2d(3, 3, 1), compile=True, compile_mode="fastest")


def test_lipnet_folds_every_batchnorm_and_keeps_the_original():
    from lipnet_pl.models import build_model
    from tiny import TINY_LIPNET_KWARGS

    model = build_model("lipnet", **TINY_LIPNET_KWARGS).eval()
    before = count_batchnorm(model)
    assert count_batchnorm(fold_batchnorm(model)) == 0 and count_batchnorm(model) == before > 0
