"""Sizes that keep tests fast on two CPU cores: the paper's LIP-Net layout at a fraction of its
widths (same code paths) and helpers shared by several test modules."""

from __future__ import annotations

TINY_LIPNET_KWARGS = dict(
    stem_channels=8,
    widths=[8, 8, 16, 16, 32, 32],
    aspp_channels=32,
    decoder_channels=32,
    skip_channels=8,
)
"""``build_model("lipnet", **TINY_LIPNET_KWARGS)``: a narrow LIP-Net."""

TINY_NET_CONFIG = dict(name="lipnet", num_classes=20, **TINY_LIPNET_KWARGS)
"""The tiny LIP-Net as a ``model.net`` config / ``ModelSpec.net``."""

TINY_NET = [
    f"model.net.{key}={str(value).replace(' ', '')}" for key, value in TINY_LIPNET_KWARGS.items()
]
"""Hydra overrides giving the tiny LIP-Net."""
