"""Evaluation: the standard protocol equals an independent recomputation; reports, figures and
prediction files are written; predict gives the same labels as eval."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.tta import predict_logits
from lipnet_pl.data import EvalTransform, LIPDataset
from lipnet_pl.data.layout import find_layout
from lipnet_pl.evaluation.evaluate import evaluate
from lipnet_pl.evaluation.reports import iou_markdown_table, plot_confusion_matrix
from lipnet_pl.inference.predict import predict
from tiny import same_label_share


def eval_cfg(root, ckpt, out, *extra):
    return compose(
        "eval",
        [
            f"ckpt_path={ckpt}",
            "data=lip",
            f"data.root={root}",
            "data.num_workers=0",
            "data.batch_size=2",
            "trainer=cpu",
            f"paths.output_dir={out}",
            *extra,
        ],
    )


def reference_confmat(root, ckpt, flip: bool) -> tuple[np.ndarray, int]:
    """The split's confusion matrix by hand: the plain network (no fast path) on the data layer's
    samples, one image at a time, logits back to the label size, argmax, np.bincount over the
    split. Also counts the near-tie pixels (top two logits within 1e-4): batch size changes the
    convolution kernels' rounding (by ~1e-6), which may flip those and nothing else."""
    import torch.nn.functional as F

    loaded = load_model(ckpt)
    dataset = LIPDataset(
        find_layout(root)["val"], EvalTransform(loaded.input_size, loaded.mean, loaded.std)
    )
    perm = loaded.classes.flip_permutation if flip else None
    hist = np.zeros((20, 20), dtype=np.int64)
    near_ties = 0
    for i in range(len(dataset)):
        sample = dataset[i]
        logits = predict_logits(loaded.net, sample["image"][None], flip_permutation=perm)
        label = sample["mask"].long().numpy()
        up = F.interpolate(logits, size=label.shape, mode="bilinear")[0]
        pred = up.argmax(0).numpy()
        valid = label != 255
        hist += np.bincount(20 * label[valid] + pred[valid], minlength=400).reshape(20, 20)
        top2 = up.topk(2, dim=0).values.numpy()
        near_ties += int(((top2[0] - top2[1] < 1e-4) & valid).sum())
    return hist, near_ties


@pytest.mark.slow
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_evaluate_matches_an_independent_recomputation(lip_root, trained_ckpt, tmp_path, tta):
    results = evaluate(eval_cfg(lip_root, trained_ckpt, tmp_path, f"tta={tta}", "fast=false"))
    ref, near_ties = reference_confmat(lip_root, trained_ckpt, flip=tta == "flip")
    got = np.asarray(results["confmat"])
    assert got.sum() == ref.sum()  # every labelled pixel at the original resolution, once
    # Exact up to the near ties (each flipped pixel moves one count: |diff| sums to 2 per pixel).
    # A resolution, ignore-label or accumulation error moves thousands of counts.
    assert np.abs(got - ref).sum() <= 2 * near_ties, (np.abs(got - ref).sum(), near_ties)
    assert near_ties < 0.01 * ref.sum()  # the tiny fixture network is barely trained
    tp = np.diag(got).astype(float)
    iou = tp / np.maximum(got.sum(0) + got.sum(1) - tp, 1)
    assert results["miou"] == pytest.approx(iou.mean())
    assert results["num_images"] == len(find_layout(lip_root)["val"].ids)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["tta"]["flip"] is (tta == "flip")
    assert on_disk["miou"] == pytest.approx(results["miou"]) and on_disk["net"]["name"] == "lipnet"


@pytest.mark.slow
def test_evaluate_writes_table_figures_and_prediction_files(lip_root, trained_ckpt, tmp_path):
    results = evaluate(eval_cfg(lip_root, trained_ckpt, tmp_path, "save_predictions=true"))
    table = (tmp_path / "per_class_iou.md").read_text()
    assert "| Left-arm |" in table and "| Right-shoe |" in table and "| miou |" in table
    assert "| lr_miou |" in table  # mean IoU of the six left/right classes
    for name in ("per_class_iou.png", "confusion_matrix.png"):
        with Image.open(tmp_path / name) as img:
            assert img.size[0] > 200 and img.size[1] > 200
    assert set(results["files"]) == {"metrics", "table", "iou_plot", "confusion_plot"}
    assert any((tmp_path / "figures").glob("val_panel_*.png"))
    split = find_layout(lip_root)["val"]
    for sample_id in split.ids:
        with Image.open(tmp_path / "predictions" / f"{sample_id}.png") as pred:
            assert pred.mode == "L"
            assert pred.size == Image.open(split.image_path(sample_id)).size


@pytest.mark.slow
@pytest.mark.parametrize("tta", ["none", "flip"])
def test_predict_writes_exactly_the_labels_eval_scores(lip_root, trained_ckpt, tmp_path, tta):
    """One loader, one preprocessing, one network, one logits->labels step: the label PNGs of
    predict equal eval's predictions pixel for pixel on the same images."""
    evaluate(
        eval_cfg(lip_root, trained_ckpt, tmp_path / "eval", "save_predictions=true", f"tta={tta}")
    )
    split = find_layout(lip_root)["val"]
    images = [str(split.image_path(i)) for i in split.ids]
    predict(
        compose(
            "predict",
            [
                f"ckpt_path={trained_ckpt}",
                f"input=[{','.join(images)}]",
                f"output={tmp_path / 'predict'}",
                f"paths.output_dir={tmp_path / 'predict'}",
                f"tta={tta}",
                "batch_size=2",
                "device=cpu",
            ],
        )
    )
    for sample_id in split.ids:
        from_eval = np.asarray(Image.open(tmp_path / "eval" / "predictions" / f"{sample_id}.png"))
        from_predict = np.asarray(Image.open(tmp_path / "predict" / "labels" / f"{sample_id}.png"))
        assert np.array_equal(from_eval, from_predict), sample_id


def test_per_class_table_and_plots_from_confusion(tmp_path):
    table = iou_markdown_table({"a": 0.5, "b": 0.25}, {"miou": 0.375})
    assert "| miou | 37.50 |" in table and "| b | 25.00 |" in table
    with pytest.raises(ValueError, match="does not match 3 class names"):
        plot_confusion_matrix(np.zeros((2, 2)), ["a", "b", "c"], tmp_path / "x.png")


@pytest.mark.slow
def test_onnx_runtime_backend_agrees_with_pytorch(lip_root, trained_ckpt, tmp_path):
    """The same checkpoint exported and run by ONNX Runtime: >= 99.9 % of the label pixels and
    the mIoU (within 0.1 point) of the PyTorch backend."""
    runs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        runs[backend] = evaluate(
            eval_cfg(lip_root, trained_ckpt, out, f"backend={backend}", "save_predictions=true")
        )
    assert (tmp_path / "onnxruntime" / "model.onnx").is_file()  # exported into the run dir
    assert abs(runs["torch"]["miou"] - runs["onnxruntime"]["miou"]) <= 0.001
    share = same_label_share(
        tmp_path / "torch" / "predictions", tmp_path / "onnxruntime" / "predictions"
    )
    assert share >= 0.999
