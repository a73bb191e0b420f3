"""Multirun summary: one table (CSV + Markdown + plot) of every job of a Hydra sweep.

Registered in ``conf/hydra/default.yaml`` as a Hydra callback; at the end of a multirun it reads
the ``run_summary.json`` each training job wrote (see :func:`lipnet_pl.training.train.run_summary`)
and the ``job_status.json`` of every job (failed ones too, :mod:`lipnet_pl.sweeps.jobs`), and
writes ``sweep_summary.csv``, ``sweep_summary.md`` (per job, then per configuration over seeds,
:mod:`lipnet_pl.sweeps.stats`) and ``sweep_summary.png`` in the sweep directory. Next to the best
val mIoU it reports, for the same epoch, the mean IoU over the left/right classes (LIP: arms,
legs, shoes), the part of human parsing that needs context from far away, and what the network
costs: GFLOPs and CPU latency at batch 1 at the job's crop size (:mod:`lipnet_pl.sweeps.latency`),
with the mIoU-vs-latency Pareto front per configuration (:mod:`lipnet_pl.sweeps.stats`).
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from lipnet_pl.cli import fail_after_hydra
from lipnet_pl.errors import SweepFailed
from lipnet_pl.sweeps import stats
from lipnet_pl.sweeps.jobs import STATUS_FILE, read_status

log = logging.getLogger(__name__)

COLUMNS = (
    "job",
    "model",
    "dilations",
    "params",
    "gflops",
    "cpu_latency_ms",
    "best_val_miou",
    "best_val_lr_miou",
    "train_images_per_s",
    "world_size",
    "restart_count",
    "status",
    "reason",
    "overrides",
)
HEADERS = (
    "job",
    "model",
    "dilations",
    "params",
    "GFLOPs",
    "CPU ms (b1)",
    "best val mIoU (%)",
    "left/right mIoU (%)",
    "train img/s",
    "world size",
    "restarts",
    "status",
    "reason",
    "overrides",
)
# in the CSV only (the Markdown table stays readable): how each job ran
RUN_COLUMNS = (
    "num_nodes",
    "devices_per_node",
    "precision",
    "global_step",
    "start_step",
    "latency_backend",
    "input_size",
)
KILLED = "stopped without a result (killed, or its process died)"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        log.warning("skipping unreadable %s: %s", path, err)
        return None


def _job_dirs(sweep_dir: Path, summary_name: str) -> list[Path]:
    found = {p.parent for p in sweep_dir.rglob(summary_name)}
    found |= {p.parent for p in sweep_dir.rglob(STATUS_FILE)}
    return sorted(found, key=lambda d: _job_key(d / summary_name, sweep_dir))


def collect_rows(
    sweep_dir: str | Path, summary_name: str = "run_summary.json"
) -> list[dict[str, Any]]:
    """One row per job folder of ``sweep_dir`` (finished or failed), in job order."""
    sweep_dir = Path(sweep_dir)
    rows = []
    for job_dir in _job_dirs(sweep_dir, summary_name):
        status = read_status(job_dir)
        data = _read_json(job_dir / summary_name) or {}
        state = status.get("status") or ("finished" if data else "failed")
        reason = status.get("reason") if state == "failed" else None
        if state not in ("finished", "failed"):
            state, reason = "failed", KILLED
        if state == "failed":
            data = {}  # a summary left by an earlier attempt is not this job's result
        overrides = status.get("overrides") or data.get("overrides") or []
        rows.append(
            {
                "job": str(job_dir.relative_to(sweep_dir)),
                **{k: data.get(k) for k in (*COLUMNS[1:11], *RUN_COLUMNS)},
                "status": state,
                "reason": reason,
                "overrides": " ".join(overrides),
                "overrides_list": list(overrides),
                "num": status.get("num"),
            }
        )
    rows.sort(key=lambda r: (r["num"] is None, r["num"] or 0))
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
    if key in ("gflops", "cpu_latency_ms", "train_images_per_s"):
        return f"{float(value):.2f}"
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def write_summary(
    sweep_dir: str | Path, filename: str = "sweep_summary", reference: str | None = None
) -> tuple[Path, Path] | None:
    """Write ``<filename>.csv`` (one row per job), ``<filename>.md`` (that table, then one row
    per configuration over its seeds) and ``<filename>.png``; None when no job reported."""
    sweep_dir = Path(sweep_dir)
    rows = collect_rows(sweep_dir)
    if not rows:
        log.warning("no job results under %s: no sweep summary written", sweep_dir)
        return None
    csv_path, md_path = sweep_dir / f"{filename}.csv", sweep_dir / f"{filename}.md"
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS + RUN_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
            )
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(k, row[k]) for k in COLUMNS) + " |")
    groups = stats.group_rows(rows, reference)
    per_config = "\n\nPer configuration (seeds pooled):\n\n" + stats.markdown(groups)
    md_path.write_text("\n".join(lines) + per_config)
    stats.plot(groups, sweep_dir / f"{filename}.png")
    return csv_path, md_path


class SweepSummary(Callback):
    """Hydra callback: summary of the sweep when the multirun ends; failed jobs end the command
    with one line and exit status 4 (:class:`~lipnet_pl.errors.SweepFailed`) after it."""

    def __init__(self, filename: str = "sweep_summary", reference: str | None = None) -> None:
        self.filename = filename
        self.reference = reference

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        written = write_summary(sweep_dir, self.filename, self.reference)
        if not written:
            return
        print(f"sweep summary: {written[0]}, {written[1]} and {self.filename}.png")
        print(written[1].read_text())
        rows = collect_rows(sweep_dir)
        failed = [r for r in rows if r["status"] != "finished"]
        if failed:
            names = "; ".join(f"{r['job']} ({r['reason']})" for r in failed)
            fail_after_hydra(
                SweepFailed(
                    f"{len(failed)} of {len(rows)} sweep jobs failed: {names}. The summary "
                    f"{written[1]} lists them; relaunch the same command (same sweep_name) to rerun "
                    "only those"
                )
            )
