"""Standard LIP parsing metrics (one confusion matrix per split) and the LIP-Net paper's metric.

Standard protocol (SCHP/CE2P ``compute_mean_ioU``, HRNet ``testval``): every prediction is brought
back (bilinear on the logits) to its image's ORIGINAL label size, ground-truth pixels equal to the
ignore index (255) are dropped, and ONE ``C x C`` confusion matrix is accumulated over the whole
split. Its state is sum-reduced, so under DDP every rank adds its own samples and ``compute()``
sums them (the caller must not feed the duplicates a ``DistributedSampler`` pads with; see
:func:`lipnet_pl.engine.distributed.padded_sample_mask`).

The paper's metric (``paper_miou_per_image``) is computed per image with +1 smoothing, so a class
absent from both ground truth and prediction scores IoU = 1. It inflates numbers heavily and is
NOT comparable with published LIP results; it is reported only to relate to the paper's "70.3".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import multiclass_confusion_matrix

from lipnet_pl.core.labels import labels_at
from lipnet_pl.data.classes import IGNORE_INDEX


def scores_from_confusion(confmat: Tensor) -> dict[str, Tensor]:
    """Pixel accuracy, mean accuracy, per-class IoU and mIoU from a ``[gt, pred]`` confusion matrix.

    Same formulas as SCHP's ``compute_mean_ioU``: a class with no ground-truth and no predicted
    pixel scores 0 (denominators clamped to 1), and the mean runs over ALL classes.
    """
    cm = confmat.to(torch.float64)
    tp = cm.diag()
    gt = cm.sum(dim=1)
    pred = cm.sum(dim=0)
    iou = tp / (gt + pred - tp).clamp(min=1.0)
    return {
        "pixel_acc": tp.sum() / cm.sum().clamp(min=1.0),
        "mean_acc": (tp / gt.clamp(min=1.0)).mean(),
        "miou": iou.mean(),
        "iou": iou,
    }


def paper_image_miou(confmat: Tensor) -> Tensor:
    """The LIP-Net paper's smoothed per-image mIoU from ONE image's confusion matrix.

    ``IoU_c = (intersection_c + 1) / (union_c + 1)`` for every class, averaged over classes:
    classes absent from ground truth and prediction score 1 (why the paper's numbers are high).
    """
    cm = confmat.to(torch.float64)
    inter = cm.diag()
    union = cm.sum(dim=0) + cm.sum(dim=1) - inter
    return ((inter + 1.0) / (union + 1.0)).mean()


class LIPSegmentationMetrics(Metric):
    """Accumulates the split's confusion matrix at original label size (+ the paper's metric).

    ``update(logits, targets)``: ``logits`` is ``[B, C, h, w]`` (network resolution) or a list of
    ``[C, h_i, w_i]``; ``targets`` a list (or batch) of ``[H_i, W_i]`` long label maps at the
    original resolution. ``compute()`` returns ``pixel_acc``, ``mean_acc``, ``miou``, ``iou``
    (per class), ``paper_miou_per_image`` and the raw ``confmat``.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )
        self.add_state("paper_iou_sum", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_images", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor | Sequence[Tensor], targets: Tensor | Sequence[Tensor]) -> None:
        if len(logits) != len(targets):
            raise ValueError(f"got {len(logits)} predictions but {len(targets)} label maps")
        for logit, target in zip(logits, targets, strict=True):
            if logit.ndim != 3 or logit.shape[0] != self.num_classes:
                raise ValueError(
                    f"expected logits [{self.num_classes}, h, w], got {tuple(logit.shape)}"
                )
            if target.ndim != 2:
                raise ValueError(f"expected an [H, W] label map, got {tuple(target.shape)}")
            pred = labels_at(logit, target.shape)
            cm = multiclass_confusion_matrix(
                pred,
                target.to(pred.device).long(),
                num_classes=self.num_classes,
                ignore_index=self.ignore_index,
                validate_args=False,
            )
            self.confmat += cm
            self.paper_iou_sum += paper_image_miou(cm)
            self.num_images += 1

    def compute(self) -> dict[str, Tensor]:
        out = scores_from_confusion(self.confmat)
        out["paper_miou_per_image"] = self.paper_iou_sum / self.num_images.clamp(min=1)
        out["confmat"] = self.confmat.clone()
        out["num_images"] = self.num_images.clone()
        return out


def percent(value: float | None, digits: int = 2) -> str:
    """A score as every command prints it: percent with a % sign (``14.23%``), the unit of
    published LIP results. Files (metrics.json, run_summary.json, logs) keep fractions."""
    return "-" if value is None else f"{100 * float(value):.{digits}f}%"
