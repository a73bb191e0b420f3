"""Evaluation outputs: metrics.json, a per-class IoU Markdown table, an IoU bar chart and a
row-normalised confusion matrix.

matplotlib runs headless (Agg): evaluation works on servers without a display.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lipnet_pl.outputs import atomic_save  # noqa: E402


def iou_markdown_table(iou: Mapping[str, float], summary: Mapping[str, float] | None = None) -> str:
    """Markdown table of per-class IoU (in %), preceded by the summary metrics if given."""
    lines = []
    if summary:
        lines += ["| metric | value (%) |", "|---|---:|"]
        lines += [f"| {k} | {100 * float(v):.2f} |" for k, v in summary.items()]
        lines.append("")
    lines += ["| class | IoU (%) |", "|---|---:|"]
    lines += [f"| {name} | {100 * float(v):.2f} |" for name, v in iou.items()]
    return "\n".join(lines) + "\n"


def plot_per_class_iou(
    iou: Mapping[str, float], path: str | Path, title: str = "per-class IoU"
) -> Path:
    """Horizontal bar chart of per-class IoU with the mean as a dashed line."""
    names = list(iou)
    values = np.array([100 * float(iou[n]) for n in names])
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.2))
    ax.barh(range(len(names)), values, color="tab:blue")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.axvline(values.mean(), color="tab:red", linestyle="--", label=f"mIoU {values.mean():.1f}%")
    ax.set_xlim(0, 100)
    ax.set_xlabel("IoU (%)")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(confmat, names: Sequence[str], path: str | Path) -> Path:
    """Row-normalised confusion matrix (rows: ground truth, columns: prediction) as a heat map."""
    cm = np.asarray(confmat, dtype=np.float64)
    if cm.shape != (len(names), len(names)):
        raise ValueError(
            f"confusion matrix shape {cm.shape} does not match {len(names)} class names"
        )
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1.0)
    size = 0.42 * len(names) + 2
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("prediction")
    ax.set_ylabel("ground truth")
    ax.set_title("confusion matrix (row-normalised)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    try:
        return atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    finally:
        plt.close(fig)


HEADLINE = ("miou", "pixel_acc", "mean_acc", "lr_miou", "paper_miou_per_image")


def write_reports(
    results: Mapping[str, Any], names: Sequence[str], out_dir: str | Path, extra: Mapping[str, Any]
) -> dict[str, Path]:
    """metrics.json (results + ``extra``), per_class_iou.md, per_class_iou.png and
    confusion_matrix.png in ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "metrics": out_dir / "metrics.json",
        "table": out_dir / "per_class_iou.md",
        "iou_plot": out_dir / "per_class_iou.png",
        "confusion_plot": out_dir / "confusion_matrix.png",
    }
    metrics = json.dumps({**results, **extra}, indent=2)
    atomic_save(files["metrics"], lambda tmp: tmp.write_text(metrics))
    headline = {k: results[k] for k in HEADLINE if results.get(k) is not None}
    table = iou_markdown_table(results["iou"], headline)
    atomic_save(files["table"], lambda tmp: tmp.write_text(table))
    title = f"per-class IoU (mIoU {100 * results['miou']:.2f}%)"
    plot_per_class_iou(results["iou"], files["iou_plot"], title=title)
    plot_confusion_matrix(results["confmat"], names, files["confusion_plot"])
    return files
