"""Multiruns through the real train command: named presets, raw dilation lists, DDP refused."""

from __future__ import annotations

import csv
import json

import pytest

from tiny import TINY_NET, run_command

TINY = [
    "data=lip",
    "data.crop_size=[64,64]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "logger=none",
    "callbacks.progress_bar=null",
    "callbacks.throughput.warmup_steps=0",  # one step per run: time it (3 warm-up steps by default)
    "sweep_latency_s=0",  # CPU latency per job: tests/e2e/test_sweep_latency_e2e.py
    *TINY_NET,
]


def _multirun(tmp_path, lip_root, *overrides):
    sweep_dir = tmp_path / "sweep"
    args = ["-m", *TINY, f"data.root={lip_root}", f"hydra.sweep.dir={sweep_dir}", *overrides]
    return run_command("train", args, tmp_path, timeout=400), sweep_dir


def _read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_multirun_over_named_presets_writes_summary_table(tmp_path, lip_root):
    proc, sweep_dir = _multirun(tmp_path, lip_root, "model/dilations=glob(*,exclude=[none,wide])")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _read_csv(sweep_dir / "sweep_summary.csv")  # glob order: control, paper, shallow
    assert [json.loads(r["dilations"]) for r in rows] == [
        [1] * 6,
        [1, 1, 2, 4, 8, 1],
        [1, 1, 1, 2, 4, 1],
    ]
    for row in rows:
        assert int(row["params"]) > 0 and float(row["gflops"]) > 0
        assert 0.0 <= float(row["best_val_miou"]) <= 1.0
        assert 0.0 <= float(row["best_val_lr_miou"]) <= 1.0
        assert float(row["train_images_per_s"]) > 0
    md = (sweep_dir / "sweep_summary.md").read_text()
    assert "| best val mIoU (%) | left/right mIoU (%) | train img/s |" in md
    assert "[1,1,2,4,8,1]" in md and "[1,1,1,2,4,1]" in md


@pytest.mark.slow
def test_multirun_over_raw_dilation_lists(tmp_path, lip_root):
    proc, sweep_dir = _multirun(
        tmp_path, lip_root, "model.net.dilations=[1,1,2,4,8,1],[1,2,4,8,16,1]"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _read_csv(sweep_dir / "sweep_summary.csv")
    assert [json.loads(r["dilations"]) for r in rows] == [[1, 1, 2, 4, 8, 1], [1, 2, 4, 8, 16, 1]]
    assert (
        rows[0]["params"] == rows[1]["params"]
    )  # dilation changes the receptive field, not the size


@pytest.mark.slow
def test_multirun_with_ddp_is_refused_with_a_clear_message(tmp_path, lip_root):
    # without a SLURM launcher every job is refused (a failed row each), the sweep ends with 4
    proc, _ = _multirun(tmp_path, lip_root, "trainer=ddp_sim", "model/dilations=paper,shallow")
    assert proc.returncode == 4
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 2 of 2 sweep jobs failed: model.dilations=paper (Hydra multirun")
    assert "one device per job" in last and "hydra/launcher=slurm" in last
    assert "Traceback" not in proc.stderr
