"""Standard LIP metrics vs. an independent numpy computation, the paper metric, DDP padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from torchmetrics.classification import MulticlassJaccardIndex

from lipnet_pl.core.metrics import (
    LIPSegmentationMetrics,
    paper_image_miou,
    scores_from_confusion,
)
from lipnet_pl.engine.distributed import padded_sample_mask

C = 20


def numpy_reference(preds: list[np.ndarray], targets: list[np.ndarray], n: int = C) -> dict:
    """SCHP compute_mean_ioU, written with np.bincount."""
    hist = np.zeros((n, n), dtype=np.int64)
    for p, t in zip(preds, targets, strict=True):
        valid = t != 255
        hist += np.bincount(n * t[valid].astype(np.int64) + p[valid], minlength=n * n).reshape(n, n)
    tp = np.diag(hist).astype(np.float64)
    pos, res = hist.sum(1), hist.sum(0)
    iou = tp / np.maximum(1.0, pos + res - tp)
    return {
        "hist": hist,
        "pixel_acc": tp.sum() / pos.sum(),
        "mean_acc": (tp / np.maximum(1.0, pos)).mean(),
        "iou": iou,
        "miou": iou.mean(),
    }


def random_batch(gen: torch.Generator, batch: int, net_hw=(24, 20)):
    logits = torch.randn(batch, C, *net_hw, generator=gen)
    targets = []
    for _ in range(batch):
        h, w = (int(v) for v in torch.randint(15, 45, (2,), generator=gen))
        t = torch.randint(0, C, (h, w), generator=gen)
        t[torch.rand(h, w, generator=gen) < 0.15] = 255
        targets.append(t)
    return logits, targets


def test_confusion_metrics_match_numpy_bincount_at_original_size():
    gen = torch.Generator().manual_seed(0)
    metric = LIPSegmentationMetrics(C)
    preds_np, targets_np = [], []
    for _ in range(3):  # several batches accumulate into ONE matrix
        logits, targets = random_batch(gen, batch=4)
        metric.update(logits, targets)
        for lg, t in zip(logits, targets, strict=True):
            up = F.interpolate(lg[None], size=t.shape, mode="bilinear", align_corners=False)[0]
            preds_np.append(up.argmax(0).numpy())
            targets_np.append(t.numpy())
    got = metric.compute()
    ref = numpy_reference(preds_np, targets_np)
    np.testing.assert_array_equal(got["confmat"].numpy(), ref["hist"])
    assert got["confmat"].sum() == sum(int((t != 255).sum()) for t in targets_np)
    for key in ("pixel_acc", "mean_acc", "miou"):
        assert float(got[key]) == pytest.approx(ref[key], abs=1e-12), key
    np.testing.assert_allclose(got["iou"].numpy(), ref["iou"], atol=1e-12)
    assert int(got["num_images"]) == 12


def test_miou_equals_torchmetrics_jaccard_when_every_class_occurs():
    gen = torch.Generator().manual_seed(1)
    logits, targets = random_batch(gen, batch=6)
    ours = LIPSegmentationMetrics(C)
    ours.update(logits, targets)
    jaccard = MulticlassJaccardIndex(num_classes=C, average="macro", ignore_index=255)
    for lg, t in zip(logits, targets, strict=True):
        up = F.interpolate(lg[None], size=t.shape, mode="bilinear", align_corners=False)
        jaccard.update(up.argmax(1), t[None])
    assert float(ours.compute()["miou"]) == pytest.approx(float(jaccard.compute()), abs=1e-6)


def test_absent_class_counts_as_zero_in_standard_miou():
    cm = torch.zeros(3, 3, dtype=torch.long)
    cm[0, 0], cm[1, 1] = 10, 5  # class 2 never occurs: SCHP counts IoU 0 and averages over all 3
    scores = scores_from_confusion(cm)
    assert scores["iou"].tolist() == [1.0, 1.0, 0.0]
    assert float(scores["miou"]) == pytest.approx(2 / 3)


def test_paper_metric_scores_absent_classes_as_one():
    target = torch.zeros(8, 8, dtype=torch.long)
    target[2:4, 2:4] = 1
    perfect = F.one_hot(target, C).permute(2, 0, 1).float()
    metric = LIPSegmentationMetrics(C)
    metric.update([perfect], [target])
    res = metric.compute()
    assert float(res["paper_miou_per_image"]) == pytest.approx(1.0)  # 18 absent classes score 1
    assert float(res["miou"]) == pytest.approx(2 / C)  # standard: absent classes score 0

    # predict only background: class 1 has inter 0, union 4 -> 1/5; background 60/64 -> 61/65
    wrong = torch.zeros(C, 8, 8)
    wrong[0] = 1.0
    cm = torch.zeros(C, C, dtype=torch.long)
    cm[0, 0], cm[1, 0] = 60, 4
    expected = (61 / 65 + 1 / 5 + (C - 2)) / C
    assert float(paper_image_miou(cm)) == pytest.approx(expected)
    metric.reset()
    metric.update([wrong], [target])
    assert float(metric.compute()["paper_miou_per_image"]) == pytest.approx(expected)


def test_paper_metric_is_mean_over_images():
    target = torch.zeros(4, 4, dtype=torch.long)
    good = F.one_hot(target, C).permute(2, 0, 1).float()
    bad = torch.zeros(C, 4, 4)
    bad[5] = 1.0  # predicts class 5 everywhere: IoU_0 = 1/17, IoU_5 = 1/17
    metric = LIPSegmentationMetrics(C)
    metric.update([good, bad], [target, target])
    per_bad = (2 / 17 + (C - 2)) / C
    assert float(metric.compute()["paper_miou_per_image"]) == pytest.approx((1.0 + per_bad) / 2)


def test_bad_shapes_raise_clear_errors():
    metric = LIPSegmentationMetrics(C)
    with pytest.raises(ValueError, match="expected logits"):
        metric.update([torch.zeros(3, 4, 4)], [torch.zeros(4, 4, dtype=torch.long)])
    with pytest.raises(ValueError, match="label maps"):
        metric.update(torch.zeros(2, C, 4, 4), [torch.zeros(4, 4, dtype=torch.long)])


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize(("n", "world"), [(7, 2), (10, 4), (5, 3), (8, 2)])
def test_padded_sample_mask_keeps_every_sample_exactly_once(n, world, shuffle):
    dataset = list(range(n))
    kept: list[int] = []
    for rank in range(world):
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=3
        )
        indices = list(sampler)
        seen = 0
        for start in range(0, len(indices), 2):  # batches of 2, like validation_step sees them
            chunk = indices[start : start + 2]
            keep = padded_sample_mask(sampler, seen, len(chunk))
            seen += len(chunk)
            kept += [i for i, k in zip(chunk, keep, strict=True) if k]
    assert sorted(kept) == dataset


def test_padded_sample_mask_keeps_all_without_distributed_sampler():
    assert padded_sample_mask(None, 5, 3) == [True, True, True]


@pytest.mark.parametrize("channels_last", [False, True])
def test_labels_are_the_argmax_first_on_ties_at_the_requested_size(channels_last):
    from lipnet_pl.core.labels import class_argmax, labels_at

    torch.manual_seed(0)
    logits = torch.randn(1, 20, 31, 17)
    if channels_last:  # what the fast path returns
        logits = logits.contiguous(memory_format=torch.channels_last)
    assert torch.equal(class_argmax(logits[0]), logits[0].argmax(0))
    up = F.interpolate(logits, size=(62, 33), mode="bilinear", align_corners=False)[0]
    assert torch.equal(labels_at(logits[0], (62, 33)), up.argmax(0))
    tied = torch.zeros(4, 3, 3)
    tied[1] = tied[3] = 1.0
    assert (class_argmax(tied) == 1).all()
