"""Test-time augmentation: horizontal flip (with left/right channel swap) and multi-scale.

A mirrored person has their left arm where the right arm was, so the flipped image's prediction
must have its left/right logit channels swapped (``ClassInfo.flip_permutation``) before it is
flipped back and averaged with the plain prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TTA_DEFAULTS: dict[str, Any] = {"flip": False, "scales": [1.0]}
"""No test-time augmentation; conf/tta/*.yaml holds the named choices (none, flip, multiscale)."""


def tta_config(tta: Mapping[str, Any] | None) -> dict[str, Any]:
    """``tta`` completed with :data:`TTA_DEFAULTS` and checked (``flip`` bool, positive ``scales``)."""
    cfg = {**TTA_DEFAULTS, **dict(tta or {})}
    unknown = sorted(set(cfg) - set(TTA_DEFAULTS))
    if unknown:
        raise ValueError(f"tta: unknown key(s) {unknown}; known: {sorted(TTA_DEFAULTS)}")
    if not isinstance(cfg["flip"], bool):
        raise ValueError(f"tta.flip must be true or false, got {cfg['flip']!r}")
    scales = cfg["scales"]
    if isinstance(scales, int | float):
        scales = [scales]
    try:
        scales = [float(s) for s in scales]
    except (TypeError, ValueError):
        raise ValueError(f"tta.scales must be a list of positive numbers, got {scales!r}") from None
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"tta.scales must be a list of positive numbers, got {scales!r}")
    return {"flip": cfg["flip"], "scales": scales}


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_logits(
    net: nn.Module,
    images: Tensor,
    flip_permutation: Sequence[int] | None = None,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    """Average logits ``[B, C, H, W]`` at the images' size over scales (and flips).

    ``flip_permutation`` (``perm[c]`` = the class ``c`` becomes in a mirrored image) turns on flip
    TTA; ``scales`` resizes the input by each factor and brings the logits back to ``H x W``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [B, 3, H, W], got shape {tuple(images.shape)}")
    if flip_permutation is None and [float(s) for s in scales] == [1.0]:
        return net(images)  # no TTA: no averaging copy
    scales = tuple(float(s) for s in scales)
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales must be positive factors, got {list(scales)}")
    size = (int(images.shape[-2]), int(images.shape[-1]))
    perm = (
        None
        if flip_permutation is None
        else torch.as_tensor(list(flip_permutation), dtype=torch.long)
    )
    total: Tensor | None = None
    count = 0
    for scale in scales:
        if scale == 1.0:
            x = images
        else:
            scaled = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            x = _resize(images, scaled)
        views = [_resize(net(x).float(), size)]
        if perm is not None:
            flipped = net(x.flip(-1)).float()
            if flipped.shape[1] != len(perm):
                raise ValueError(
                    f"flip_permutation has {len(perm)} entries but the model outputs "
                    f"{flipped.shape[1]} classes"
                )
            views.append(_resize(flipped[:, perm.to(flipped.device)].flip(-1), size))
        for view in views:
            total = view if total is None else total + view
            count += 1
    assert total is not None
    return total / count
