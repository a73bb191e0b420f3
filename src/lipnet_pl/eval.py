"""Evaluation entry point: ``python -m lipnet_pl.eval ckpt_path=PATH [data.root=DIR] [tta.flip=true]``.

Runs the standard LIP protocol on the val split (one confusion matrix at original label size,
mIoU over all classes) with optional flip / multi-scale TTA, and writes into the run dir:
``metrics.json``, ``per_class_iou.md``, ``per_class_iou.png``, ``confusion_matrix.png``
and validation panels under ``figures/``. Works on one device or under DDP (``trainer=ddp_sim``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from lipnet_pl.train import UserFacingError, build_datamodule, build_trainer, to_primitive
from lipnet_pl.utils import CONFIG_DIR

log = logging.getLogger(__name__)


def load_module(ckpt_path: str | Path, **overrides: Any):
    """The SegmentationModule of a training checkpoint (``weights_only=True``), with overrides."""
    from lipnet_pl.module import SegmentationModule

    path = Path(str(ckpt_path))
    if not path.is_file():
        raise UserFacingError(
            f"ckpt_path={ckpt_path} does not exist: pass a .ckpt from a training run, e.g. "
            "ckpt_path=outputs/train/runs/<time>/checkpoints/last.ckpt"
        )
    return SegmentationModule.load_from_checkpoint(
        path, map_location="cpu", weights_only=True, **overrides
    )


def write_reports(
    results: dict[str, Any], names: list[str], out_dir: Path, extra: dict[str, Any]
) -> dict[str, Path]:
    """metrics.json, the per-class IoU Markdown table and the two figures."""
    from lipnet_pl.plots import iou_markdown_table, plot_confusion_matrix, plot_per_class_iou

    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": out_dir / "metrics.json",
        "table": out_dir / "per_class_iou.md",
        "iou_plot": out_dir / "per_class_iou.png",
        "confusion_plot": out_dir / "confusion_matrix.png",
    }
    files["metrics"].write_text(json.dumps({**results, **extra}, indent=2))
    headline = {k: results[k] for k in ("miou", "pixel_acc", "mean_acc", "paper_miou_per_image")}
    files["table"].write_text(iou_markdown_table(results["iou"], headline))
    plot_per_class_iou(
        results["iou"], files["iou_plot"], title=f"per-class IoU (mIoU {100 * results['miou']:.2f})"
    )
    plot_confusion_matrix(results["confmat"], names, files["confusion_plot"])
    return files


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Validate ``cfg.ckpt_path`` on ``cfg.data``'s val split; return the metrics (rank 0)."""
    from lightning.pytorch.callbacks import RichProgressBar

    tta = to_primitive(cfg.get("tta")) or {"flip": False, "scales": [1.0]}
    module = load_module(
        cfg.ckpt_path, tta=tta, compile=False, log_images=int(cfg.get("log_images", 4))
    )
    hp = module.hparams
    # the data must look like what the network was trained on: its classes, size and normalisation
    dm = build_datamodule(
        cfg,
        classes=hp["classes"],
        crop_size=list(hp["input_size"]),
        num_classes=len(hp["classes"]["names"]),
        mean=hp["normalize"]["mean"],
        std=hp["normalize"]["std"],
    )
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, callbacks=[RichProgressBar()], loggers=[])
    trainer.validate(module, datamodule=dm)
    if not trainer.is_global_zero:
        return {}
    results = module.last_val_results
    extra = {
        "ckpt_path": str(cfg.ckpt_path),
        "tta": tta,
        "input_size": hp["input_size"],
        "net": hp["net"],
    }
    files = write_reports(results, list(module.class_info.names), Path(cfg.paths.output_dir), extra)
    log.info("metrics: %s", files["metrics"])
    return {**results, "files": {k: str(v) for k, v in files.items()}}


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    try:
        results = evaluate(cfg)
    except UserFacingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if results:
        print(
            f"val mIoU {100 * results['miou']:.2f} | pixel acc {100 * results['pixel_acc']:.2f} | "
            f"mean acc {100 * results['mean_acc']:.2f} | paper per-image mIoU (not comparable) "
            f"{100 * results['paper_miou_per_image']:.2f} -> {cfg.paths.output_dir}"
        )


if __name__ == "__main__":
    main()
