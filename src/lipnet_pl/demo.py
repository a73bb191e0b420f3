"""``make demo``: synthetic LIP data -> train LIP-Net on CPU -> evaluate (flip TTA) -> predict.

The README's first command. Everything lands under ``outputs/demo/runs/<time>/``; the last
line printed is exactly ``val mIoU: 0.NN`` (standard protocol, flip TTA, synthetic val split).
Extra Hydra overrides for the training run can follow: ``python -m lipnet_pl.demo trainer.max_epochs=2``.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

from lipnet_pl.train import UserFacingError
from lipnet_pl.utils import compose_config as _compose


def _test_images(data_root: Path, count: int) -> list[str]:
    from lipnet_pl.data.layout import find_layout

    layout = find_layout(data_root)
    split = layout.get("test") or layout["val"]
    return [str(split.image_path(i)) for i in split.ids[:count]]


def predict_samples(ckpt: str, images: list[str], out_dir: Path) -> Path:
    """Predictions for a few images through the inference CLI's ``run`` (flip TTA)."""
    from lipnet_pl.predict import run

    cfg = _compose(
        "predict",
        [
            f"ckpt_path={ckpt}",
            f"input=[{','.join(images)}]",
            f"output={out_dir}",
            "tta.flip=true",
            "device=cpu",
        ],
    )
    run(cfg)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    from lipnet_pl.eval import evaluate
    from lipnet_pl.train import train

    extra = list(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    run_dir = Path("outputs/demo/runs") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    train_cfg = _compose("train", ["experiment=demo", f"paths.output_dir={run_dir}", *extra])
    print(
        f"[demo] training {train_cfg.model.net.name} on synthetic LIP at {train_cfg.data.root} -> {run_dir}"
    )
    try:
        summary = train(train_cfg)
        ckpt = summary.get("best_ckpt") or summary.get("last_ckpt")
        eval_dir = run_dir / "eval"
        eval_cfg = _compose(
            "eval",
            [
                "data=synthetic",
                "trainer=cpu",
                f"data.root={train_cfg.data.root}",
                f"data.num_workers={train_cfg.data.num_workers}",
                f"ckpt_path={ckpt}",
                f"paths.output_dir={eval_dir}",
                "tta.flip=true",
            ],
        )
        print(f"[demo] evaluating {ckpt} with flip TTA")
        results = evaluate(eval_cfg)
    except UserFacingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    pred_dir = predict_samples(
        ckpt, _test_images(Path(train_cfg.data.root), 4), run_dir / "predictions"
    )
    wall = time.perf_counter() - start
    files = results["files"]
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
        f"paper per-image mIoU (not comparable) {results['paper_miou_per_image']:.3f}"
    )
    print(f"val mIoU: {results['miou']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
