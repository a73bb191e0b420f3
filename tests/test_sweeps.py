"""Hydra multirun over dilation rates writes one summary table; multirun + DDP is refused."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lipnet_pl.config import compose, config_dir
from lipnet_pl.sweeps.summary import write_summary
from tiny import TINY_NET

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
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lipnet_pl.train",
            "-m",
            *TINY,
            f"data.root={lip_root}",
            f"hydra.sweep.dir={sweep_dir}",
            *overrides,
        ],
        env={**os.environ, "WANDB_MODE": "offline"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    return proc, sweep_dir


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


def test_glob_of_dilation_presets_lists_every_preset():
    presets = sorted(p.stem for p in Path(config_dir(), "model", "dilations").glob("*.yaml"))
    assert {"control", "none", "paper", "shallow", "wide"} <= set(presets)
    for name in presets:
        cfg = compose("train", [f"model/dilations={name}", "paths.output_dir=/tmp/unused"])
        assert len(cfg.model.net.dilations) == 6


def test_context_starved_control_has_no_atrous_rate_and_no_image_pooling():
    net = compose("train", ["model/dilations=control", "paths.output_dir=/tmp/x"]).model.net
    assert net.dilations == [1] * 6 and net.aspp_rates == [1, 1, 1] and net.image_pooling == "none"
    paper = compose("train", ["paths.output_dir=/tmp/x"]).model.net  # other presets keep ASPP
    assert paper.aspp_rates == [6, 12, 18] and paper.image_pooling == "input"


def test_write_summary_orders_jobs_and_formats_markdown(tmp_path):
    for job, dil, miou in (("10", [1, 1, 1, 1, 1, 1], 0.25), ("2", [1, 1, 2, 4, 8, 1], 0.5)):
        (tmp_path / job).mkdir()
        (tmp_path / job / "run_summary.json").write_text(
            json.dumps(
                {
                    "model": "lipnet",
                    "dilations": dil,
                    "params": 3960852,
                    "gflops": 32.8,
                    "best_val_miou": miou,
                    "best_val_lr_miou": miou / 2,
                    "train_images_per_s": 12.5,
                    "world_size": 1,
                    "restart_count": 0,
                    "overrides": [f"job={job}"],
                }
            )
        )
    csv_path, md_path = write_summary(tmp_path)
    rows = _read_csv(csv_path)
    assert [r["job"] for r in rows] == ["2", "10"]  # numeric job order, not lexicographic
    md = md_path.read_text().splitlines()
    assert md[0].startswith(
        "| job | model | dilations | params | GFLOPs | CPU ms (b1) | best val mIoU (%) |"
    )
    assert md[2] == (
        "| 2 | lipnet | [1,1,2,4,8,1] | 3.96 M | 32.80 | - | 50.00 | 25.00 | 12.50 | 1 | 0 "
        "| finished | - | job=2 |"
    )
    assert write_summary(tmp_path / "empty") is None


@pytest.mark.parametrize("slot", [0, 1, 3])
def test_a_local_launcher_job_pinned_to_any_gpu_is_a_single_device_run(slot):
    """hydra/launcher=local gives each job trainer.devices=[slot]: one device, not DDP."""
    from lipnet_pl.sweeps.devices import pin
    from lipnet_pl.training.train import is_distributed

    cfg = compose("train", ["trainer=gpu", "paths.output_dir=/tmp/unused"])
    assert pin(cfg, slot, 4) == f"cuda:{slot}"
    assert list(cfg.trainer.devices) == [slot]
    assert not is_distributed(cfg.trainer)
    cfg.trainer.devices = [0, slot + 1]
    assert is_distributed(cfg.trainer)
