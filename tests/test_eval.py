"""Evaluation: standard metrics equal an independent recomputation; reports and figures are written."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lipnet_pl.data.dataset import LIPDataset
from lipnet_pl.data.layout import find_layout
from lipnet_pl.data.transforms import EvalTransform
from lipnet_pl.eval import evaluate
from lipnet_pl.train import UserFacingError, train
from lipnet_pl.tta import predict_logits
from lipnet_pl.utils import compose_config
from tiny import TINY_NET, tiny_lip


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data root, checkpoint path) of a 2-step training run on a tiny synthetic set."""
    root = tiny_lip(tmp_path_factory.mktemp("lip") / "LIP", train=4, val=3, seed=4)
    out = tmp_path_factory.mktemp("train")
    cfg = compose_config(
        "train",
        [
            "data=lip",
            f"data.root={root}",
            "data.crop_size=[64,64]",
            "data.batch_size=2",
            "data.num_workers=0",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "logger=none",
            "callbacks.progress_bar=null",
            f"paths.output_dir={out}",
            *TINY_NET,
        ],
    )
    summary = train(cfg)
    return root, summary["last_ckpt"]


def _eval_cfg(root, ckpt, out, flip):
    return compose_config(
        "eval",
        [
            f"ckpt_path={ckpt}",
            "data=lip",
            f"data.root={root}",
            "data.num_workers=0",
            "data.batch_size=2",
            "trainer=cpu",
            f"paths.output_dir={out}",
            f"tta.flip={str(flip).lower()}",
        ],
    )


def _reference_confmat(root, ckpt, flip: bool) -> np.ndarray:
    """Recompute the split's confusion matrix by hand: model, resize to label size, np.bincount."""
    from lipnet_pl.checkpoint import load_model_from_checkpoint

    loaded = load_model_from_checkpoint(ckpt)
    dataset = LIPDataset(
        find_layout(root)["val"], EvalTransform(loaded.input_size, loaded.mean, loaded.std)
    )
    perm = loaded.classes.flip_permutation if flip else None
    hist = np.zeros((20, 20), dtype=np.int64)
    for i in range(len(dataset)):
        sample = dataset[i]
        logits = predict_logits(loaded.net, sample["image"][None], flip_permutation=perm)
        label = sample["mask"].numpy()
        pred = (
            F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False)[0]
            .argmax(0)
            .numpy()
        )
        valid = label != 255
        hist += np.bincount(20 * label[valid] + pred[valid], minlength=400).reshape(20, 20)
    return hist


@pytest.mark.slow
@pytest.mark.parametrize("flip", [False, True])
def test_evaluate_matches_independent_recomputation(trained, tmp_path, flip):
    root, ckpt = trained
    results = evaluate(_eval_cfg(root, ckpt, tmp_path, flip))
    ref = _reference_confmat(root, ckpt, flip)
    np.testing.assert_array_equal(np.asarray(results["confmat"]), ref)
    tp = np.diag(ref).astype(float)
    iou = tp / np.maximum(ref.sum(0) + ref.sum(1) - tp, 1)
    assert results["miou"] == pytest.approx(iou.mean())
    assert results["num_images"] == 3
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["tta"]["flip"] is flip and on_disk["miou"] == pytest.approx(results["miou"])


@pytest.mark.slow
def test_evaluate_writes_table_and_figures(trained, tmp_path):
    root, ckpt = trained
    results = evaluate(_eval_cfg(root, ckpt, tmp_path, True))
    table = (tmp_path / "per_class_iou.md").read_text()
    assert "| Left-arm |" in table and "| Right-shoe |" in table and "| miou |" in table
    assert table.count("\n| ") >= 20 + 4
    for name in ("per_class_iou.png", "confusion_matrix.png"):
        with Image.open(tmp_path / name) as img:
            assert img.size[0] > 200 and img.size[1] > 200
    assert set(results["files"]) == {"metrics", "table", "iou_plot", "confusion_plot"}
    assert any((tmp_path / "figures").glob("val_panel_*.png"))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    cfg = _eval_cfg(tmp_path, tmp_path / "nope.ckpt", tmp_path, False)
    with pytest.raises(UserFacingError, match="ckpt_path=.*nope.ckpt does not exist"):
        evaluate(cfg)


def test_per_class_table_and_plots_from_confusion(tmp_path):
    from lipnet_pl.plots import iou_markdown_table, plot_confusion_matrix

    table = iou_markdown_table({"a": 0.5, "b": 0.25}, {"miou": 0.375})
    assert "| miou | 37.50 |" in table and "| b | 25.00 |" in table
    with pytest.raises(ValueError, match="does not match 3 class names"):
        plot_confusion_matrix(torch.zeros(2, 2).numpy(), ["a", "b", "c"], tmp_path / "x.png")
