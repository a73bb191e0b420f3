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


STRIP_ELEMENTS = 2**24
"""Logit elements (x4 bytes) resized at once by :func:`labels_uint8`: 64 MB, about 840k pixels
of 20 classes. Bigger images are resized and argmaxed in strips of rows."""


def labels_uint8(logits: Tensor, size: Sequence[int], budget: int = STRIP_ELEMENTS) -> Tensor:
    """``[C, h, w]`` logits -> uint8 ``[H, W]`` class ids at ``size`` on the CPU, the same
    bilinear-then-argmax as :func:`labels_at` in bounded memory.

    A 8000x8000 photo would need 5 GB of float logits (and as much again for the argmax copy);
    here the bilinear weights of each strip of output rows are applied to the input rows it
    reads (the row pass), then the column pass and the argmax run on that strip alone. The
    result matches :func:`labels_at` except where two classes tie to rounding."""
    height, width = (int(s) for s in size)
    classes, h, _ = logits.shape
    if classes * height * width <= budget:
        return to_uint8(labels_at(logits, (height, width)))
    logits = logits.float()
    out = torch.empty(height, width, dtype=torch.uint8)
    rows = max(1, budget // (classes * width))
    scale = h / height  # align_corners=False, as F.interpolate computes it
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        src = ((torch.arange(top, bottom, dtype=torch.float32) + 0.5) * scale - 0.5).clamp(min=0)
        y0 = src.floor().long().clamp(max=h - 1)
        y1 = (y0 + 1).clamp(max=h - 1)
        lam = (src - y0).view(1, -1, 1).to(logits.device)
        strip = logits[:, y0] * (1 - lam) + logits[:, y1] * lam  # [C, rows, w]
        full = F.interpolate(
            strip[None], size=(bottom - top, width), mode="bilinear", align_corners=False
        )[0]
        out[top:bottom] = to_uint8(class_argmax(full))
    return out


def to_uint8(labels: Tensor) -> torch.Tensor:
    """Class ids as uint8 on the CPU (LIP label PNG format; at most 255 classes)."""
    return labels.to(torch.uint8).cpu()
