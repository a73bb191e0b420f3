"""Flip TTA swaps left/right channels; multi-scale TTA returns logits at the input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lipnet_pl.core.tta import predict_logits
from lipnet_pl.data.classes import LIP

PERM = list(LIP.flip_permutation)


class SwapEquivariant(nn.Module):
    """f(x) = g(x) + P(flip(g(flip(x)))): mirroring the input mirrors the output with L/R swapped."""

    def __init__(self, g: nn.Module, perm: list[int]):
        super().__init__()
        self.g = g
        self.register_buffer("perm", torch.tensor(perm))

    def forward(self, x):
        return self.g(x) + self.g(x.flip(-1))[:, self.perm].flip(-1)


def _g():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 20, 5, padding=2)
    ).eval()


def test_flip_tta_on_equivariant_model_matches_plain_prediction():
    net = SwapEquivariant(_g(), PERM).eval()
    x = torch.randn(2, 3, 32, 24)
    plain = net(x)
    x_flip = x.flip(-1)
    assert torch.allclose(net(x_flip)[:, PERM].flip(-1), plain, atol=1e-5)  # the premise
    tta = predict_logits(net, x, flip_permutation=PERM)
    assert torch.allclose(tta, plain, atol=1e-5)
    assert torch.equal(tta.argmax(1), plain.argmax(1))


def test_flip_tta_averages_swapped_flipped_prediction():
    g = _g()
    x = torch.randn(1, 3, 16, 20)
    expected = (g(x) + g(x.flip(-1))[:, PERM].flip(-1)) / 2
    got = predict_logits(g, x, flip_permutation=PERM)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, g(x), atol=1e-3)  # a plain asymmetric model does change
    # without the channel swap the result would differ: the swap really happens
    wrong = (g(x) + g(x.flip(-1)).flip(-1)) / 2
    assert not torch.allclose(got, wrong, atol=1e-3)


def test_multiscale_returns_input_size_and_scale_one_is_identity():
    g = _g()
    x = torch.randn(2, 3, 30, 22)
    assert torch.allclose(predict_logits(g, x), g(x), atol=1e-6)
    out = predict_logits(g, x, flip_permutation=PERM, scales=(0.5, 1.0, 1.5))
    assert out.shape == (2, 20, 30, 22)
    assert torch.isfinite(out).all()


def test_bad_arguments_raise():
    g = _g()
    with pytest.raises(ValueError, match="scales"):
        predict_logits(g, torch.randn(1, 3, 8, 8), scales=(0.0,))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        predict_logits(g, torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match="flip_permutation"):
        predict_logits(g, torch.randn(1, 3, 8, 8), flip_permutation=[0, 1])
