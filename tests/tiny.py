"""Shrinking shared by the tests that compose the real configs: a narrow LIP-Net and a tiny
synthetic LIP set, so training/eval/DDP/sweep tests run in seconds on two CPU cores."""

from __future__ import annotations

from pathlib import Path

from lipnet_pl.data.synthetic import generate

TINY_NET = [
    "model.net.stem_channels=8",
    "model.net.widths=[8,8,16,16,16,16]",
    "model.net.aspp_channels=16",
    "model.net.decoder_channels=16",
    "model.net.skip_channels=8",
]
"""Hydra overrides: the paper's LIP-Net layout at 1/16 of its widths (same code paths)."""


def tiny_lip(root: Path, *, train: int, val: int, seed: int, test: int = 1, max_size: int = 96):
    """A synthetic LIP set in the official layout with 48..max_size px images."""
    return generate(
        root, train=train, val=val, test=test, seed=seed, min_size=48, max_size=max_size
    )


TINY_LIPNET_KWARGS = dict(
    stem_channels=8,
    widths=[8, 8, 16, 16, 32, 32],
    aspp_channels=32,
    decoder_channels=32,
    skip_channels=8,
)
"""``build_model("lipnet", **TINY_LIPNET_KWARGS)``: a narrow LIP-Net for inference/export tests."""
