"""The inference fast path must not change the network's outputs (beyond float rounding)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm, make_fast
from tiny import TINY_LIPNET_KWARGS


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics, so folding has something to fold (fresh BN is identity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("lipnet", TINY_LIPNET_KWARGS), ("deeplabv3plus", {"encoder_name": "resnet18"})],
    ids=["lipnet", "deeplabv3plus_resnet18"],
)
def test_fast_path_matches_plain_model(name, kwargs):
    torch.manual_seed(0)
    model = randomise_batchnorm(build_model(name, num_classes=20, **kwargs))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = make_fast(model)
    x = torch.randn(2, 3, 64, 72)  # not a multiple of the peers' stride: padding path too
    with torch.inference_mode():
        expected, got = model(x), fast(x)
    assert got.shape == expected.shape == (2, 20, 64, 72)
    # float32: equal up to summation order (logits here reach ~20, so 1e-4 abs + 1e-4 rel)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # float64: the folding itself is exact
    model64, x64 = model.double(), x.double()
    fast64 = make_fast(model64)
    with torch.inference_mode():
        assert (fast64(x64) - model64(x64)).abs().max().item() < 1e-9
    model.float()
    # every BN on the inference path is folded, and the original model is untouched
    folded = fold_batchnorm(model)
    used_bn = count_batchnorm(model)
    assert count_batchnorm(folded) < used_bn
    if name == "lipnet":
        assert count_batchnorm(folded) == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


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
