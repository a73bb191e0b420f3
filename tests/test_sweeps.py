"""The sweep summary table, the dilation presets and device pinning (the multiruns themselves:
tests/e2e/test_sweep_multiruns.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from lipnet_pl.config import compose, config_dir
from lipnet_pl.sweeps.summary import write_summary


def _read_csv(path):
    with path.open() as f:
        return list(csv.DictReader(f))


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
