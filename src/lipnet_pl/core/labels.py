"""Logits -> label map at a given size: the one definition shared by the metrics, eval's
prediction files and ``predict``, so that all three agree pixel for pixel.

The standard LIP protocol scores predictions at the ORIGINAL label resolution: logits are
resized bilinearly (align_corners=False) to the image's size, then the argmax is taken.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def resize_logits(logits: Tensor, size: Sequence[int]) -> Tensor:
    """``[C, h, w]`` logits -> float ``[C, H, W]`` at ``size`` (unchanged when already there)."""
    if tuple(logits.shape[-2:]) == tuple(int(s) for s in size):
        return logits.float()
    return F.interpolate(
        logits[None].float(), size=tuple(int(s) for s in size), mode="bilinear", align_corners=False
    )[0]


def class_argmax(logits: Tensor) -> Tensor:
    """``[C, H, W]`` logits -> long ``[H, W]`` ids of the highest class (the first on ties).

    Taken over the innermost axis of an HWC copy: on a CPU, a reduction over the outermost
    axis of a contiguous CHW tensor is ~4x slower (473x473, 20 classes, 2 cores: 26-40 ms vs
    8 ms with the copy), and it ran on every video frame."""
    return logits.permute(1, 2, 0).contiguous().argmax(dim=-1)


def labels_at(logits: Tensor, size: Sequence[int]) -> Tensor:
    """``[C, h, w]`` logits -> long ``[H, W]`` class ids at ``size``."""
    return class_argmax(resize_logits(logits, size))


def to_uint8(labels: Tensor) -> torch.Tensor:
    """Class ids as uint8 on the CPU (LIP label PNG format; at most 255 classes)."""
    return labels.to(torch.uint8).cpu()
