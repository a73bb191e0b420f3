"""Training loss: a weighted sum of cross-entropy (ignore 255) and smp's Lovasz / Dice losses.

LIP recipes commonly add Lovasz to CE because it optimises IoU directly; every term is optional
and weighted from the ``module.loss`` config.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from segmentation_models_pytorch.losses import DiceLoss, LovaszLoss
from torch import Tensor, nn

from lipnet_pl.data.classes import IGNORE_INDEX


class SegmentationLoss(nn.Module):
    """``ce * CE + lovasz * Lovasz + dice * Dice`` over ``[B, C, H, W]`` logits and ``[B, H, W]`` labels."""

    def __init__(
        self,
        num_classes: int,
        ce: float = 1.0,
        lovasz: float = 0.0,
        dice: float = 0.0,
        class_weights: Sequence[float] | None = None,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        weights = {"ce": ce, "lovasz": lovasz, "dice": dice}
        for key, value in weights.items():
            if value is None or float(value) < 0:
                raise ValueError(f"module.loss.{key} must be a weight >= 0, got {value!r}")
        if sum(float(v) for v in weights.values()) <= 0:
            raise ValueError(
                f"module.loss: all loss weights are 0 ({weights}); enable at least one"
            )
        self.weights = {k: float(v) for k, v in weights.items()}
        weight = None
        if class_weights is not None:
            if len(class_weights) != num_classes:
                raise ValueError(
                    f"module.loss.class_weights has {len(class_weights)} entries, expected "
                    f"num_classes={num_classes}"
                )
            weight = torch.as_tensor([float(w) for w in class_weights], dtype=torch.float32)
        self.ce = nn.CrossEntropyLoss(weight=weight, ignore_index=ignore_index)
        self.lovasz = LovaszLoss(mode="multiclass", ignore_index=ignore_index)
        self.dice = DiceLoss(mode="multiclass", ignore_index=ignore_index)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        total = logits.new_zeros(())
        for key, weight in self.weights.items():
            if weight > 0:
                total = total + weight * getattr(self, key)(logits, target)
        return total
