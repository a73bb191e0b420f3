"""``run_demo(cfg)``: the README's first command in one run dir, on synthetic LIP.

Trains with the given training config (``conf/demo.yaml`` = ``experiment=demo``), evaluates the
best checkpoint with flip TTA (standard protocol, synthetic val split), predicts a few test
images and prints where everything is. The last line is exactly ``val mIoU: 0.NN``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lipnet_pl.config import compose


def _test_images(data_root: Path, count: int) -> list[str]:
    from lipnet_pl.data.layout import find_layout

    layout = find_layout(data_root)
    split = layout.get("test") or layout["val"]
    return [str(split.image_path(i)) for i in split.ids[:count]]


def _evaluate(cfg: DictConfig, ckpt: str, out_dir: Path) -> dict[str, Any]:
    from lipnet_pl.evaluation.run import evaluate

    eval_cfg = compose(
        "eval",
        [
            "data=synthetic",
            "trainer=cpu",
            f"data.root={cfg.data.root}",
            f"data.num_workers={cfg.data.num_workers}",
            f"ckpt_path={ckpt}",
            f"paths.output_dir={out_dir}",
            f"tta={cfg.demo.tta}",
        ],
    )
    return evaluate(eval_cfg)


def _predict(cfg: DictConfig, ckpt: str, out_dir: Path) -> Path:
    from lipnet_pl.inference.run import run_predict

    images = _test_images(Path(cfg.data.root), int(cfg.demo.predict_images))
    predict_cfg = compose(
        "predict",
        [
            f"ckpt_path={ckpt}",
            f"input=[{','.join(images)}]",
            f"output={out_dir}",
            f"tta={cfg.demo.tta}",
            "device=cpu",
            f"paths.output_dir={out_dir}",
        ],
    )
    run_predict(predict_cfg)
    return out_dir


def run_demo(cfg: DictConfig) -> dict[str, Any]:
    from lipnet_pl.training.run import train

    start = time.perf_counter()
    run_dir = Path(cfg.paths.output_dir)
    print(f"[demo] training {cfg.model.net.name} on synthetic LIP at {cfg.data.root} -> {run_dir}")
    summary = train(cfg)
    ckpt = summary.get("best_ckpt") or summary.get("last_ckpt")
    print(f"[demo] evaluating {ckpt} with TTA {cfg.demo.tta}")
    results = _evaluate(cfg, ckpt, run_dir / "eval")
    pred_dir = _predict(cfg, ckpt, run_dir / "predictions")
    wall = time.perf_counter() - start
    files = results["files"]
    lr = results.get("lr_miou")
    print()
    print(f"[demo] done in {wall / 60:.1f} min ({wall:.0f} s); outputs under {run_dir}/")
    print(f"  checkpoint          {ckpt}")
    print(f"  metrics             {files['metrics']}")
    print(f"  per-class IoU       {files['table']} | {files['iou_plot']}")
    print(f"  confusion matrix    {files['confusion_plot']}")
    print(f"  validation panels   {run_dir / 'figures'}")
    print(f"  test predictions    {pred_dir}")
    print(
        f"  pixel acc {results['pixel_acc']:.3f} | mean acc {results['mean_acc']:.3f} | "
        f"left/right mIoU {'-' if lr is None else f'{lr:.3f}'} | paper per-image mIoU "
        f"(not comparable) {results['paper_miou_per_image']:.3f}"
    )
    print(f"val mIoU: {results['miou']:.2f}")
    return {**results, "train_summary": summary, "wall_s": wall}
