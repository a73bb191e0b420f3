"""Multirun summary: one table (CSV + Markdown) of every job of a Hydra sweep.

Registered in ``conf/hydra/default.yaml`` as a Hydra callback; at the end of a multirun it reads
the ``run_summary.json`` each training job wrote (see :func:`lipnet_pl.training.run.run_summary`)
and writes ``sweep_summary.csv`` and ``sweep_summary.md`` in the sweep directory. Next to the best
val mIoU it reports, for the same epoch, the mean IoU over the left/right classes (LIP: arms,
legs, shoes), the part of human parsing that needs context from far away.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)

COLUMNS = (
    "job",
    "model",
    "dilations",
    "params",
    "gflops",
    "best_val_miou",
    "best_val_lr_miou",
    "train_images_per_s",
    "overrides",
)


def collect_rows(
    sweep_dir: str | Path, summary_name: str = "run_summary.json"
) -> list[dict[str, Any]]:
    """One row per job folder of ``sweep_dir`` that holds a run summary, in job order."""
    rows = []
    for path in sorted(
        Path(sweep_dir).rglob(summary_name), key=lambda p: _job_key(p, Path(sweep_dir))
    ):
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            log.warning("skipping unreadable run summary %s: %s", path, err)
            continue
        rows.append(
            {
                "job": str(path.parent.relative_to(sweep_dir)),
                "model": data.get("model"),
                "dilations": data.get("dilations"),
                "params": data.get("params"),
                "gflops": data.get("gflops"),
                "best_val_miou": data.get("best_val_miou"),
                "best_val_lr_miou": data.get("best_val_lr_miou"),
                "train_images_per_s": data.get("train_images_per_s"),
                "overrides": " ".join(data.get("overrides") or []),
            }
        )
    return rows


def _job_key(path: Path, root: Path):
    rel = path.parent.relative_to(root).parts
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in rel)


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("best_val_miou", "best_val_lr_miou"):
        return f"{100 * float(value):.2f}"
    if key == "params":
        return f"{int(value) / 1e6:.2f} M"
    if key in ("gflops", "train_images_per_s"):
        return f"{float(value):.2f}"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def write_summary(
    sweep_dir: str | Path, filename: str = "sweep_summary"
) -> tuple[Path, Path] | None:
    """Write ``<filename>.csv`` and ``<filename>.md`` in ``sweep_dir``; None when no job reported."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir)
    if not rows:
        log.warning("no run_summary.json under %s: no sweep summary written", sweep_dir)
        return None
    csv_path, md_path = sweep_dir / f"{filename}.csv", sweep_dir / f"{filename}.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
    headers = [
        "job",
        "model",
        "dilations",
        "params",
        "GFLOPs",
        "best val mIoU (%)",
        "left/right mIoU (%)",
        "train img/s",
        "overrides",
    ]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(k, row[k]) for k in COLUMNS) + " |")
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


class SweepSummary(Callback):
    """Hydra callback: summary table of the sweep when the multirun ends."""

    def __init__(self, filename: str = "sweep_summary") -> None:
        self.filename = filename

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        written = write_summary(config.hydra.sweep.dir, self.filename)
        if written:
            print(f"sweep summary: {written[0]} and {written[1]}")
            print(written[1].read_text())
