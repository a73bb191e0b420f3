"""Model factory: ``build_model(name, num_classes, **kwargs)`` for LIP-Net and smp peers.

Every model maps [B, 3, H, W] float -> logits [B, num_classes, H, W] for any H, W. Constructor
arguments are primitives, so ``build_model(**cfg.model.net)`` and checkpoint hyper-parameters
rebuild the same network.
"""

from __future__ import annotations

from torch import nn

from lipnet_pl.config import plain
from lipnet_pl.models.lipnet import LIPNet
from lipnet_pl.models.peers import PEER_ARCHITECTURES, PadToMultiple, build_peer
from lipnet_pl.models.presets import LIPNET_PRESETS

MODEL_NAMES = (*LIPNET_PRESETS, *PEER_ARCHITECTURES)

__all__ = [
    "LIPNET_PRESETS",
    "MODEL_NAMES",
    "LIPNet",
    "PadToMultiple",
    "build_model",
    "build_peer",
]


def build_model(name: str, num_classes: int = 20, **kwargs) -> nn.Module:
    """Build ``name`` (one of :data:`MODEL_NAMES`) with ``num_classes`` outputs.

    ``lipnet`` and ``lipnet_rt`` are :class:`LIPNet` presets (``models/presets.py``); ``kwargs``
    are LIPNet arguments that override the preset. Peers take ``encoder_name`` (default "resnet18"),
    ``encoder_weights`` (default None: nothing is downloaded), ``pad_mode`` and smp kwargs.
    """
    kwargs = {k: plain(v) for k, v in kwargs.items()}
    key = str(name).lower()
    if key in LIPNET_PRESETS:
        try:
            return LIPNet(num_classes=num_classes, **{**LIPNET_PRESETS[key], **kwargs})
        except TypeError as err:
            raise ValueError(f"bad argument for model {key!r}: {err}") from None
    if key in PEER_ARCHITECTURES:
        try:
            return build_peer(key, num_classes=num_classes, **kwargs)
        except TypeError as err:
            raise ValueError(f"bad argument for model {key!r}: {err}") from None
    raise ValueError(f"unknown model name {name!r}; valid names: {list(MODEL_NAMES)}")
