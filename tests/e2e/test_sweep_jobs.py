"""Sweeps that answer their question: failed jobs kept, relaunch skips finished jobs, N jobs at
once on N devices (never two on one), the per-configuration summary over seeds."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lipnet_pl.sweeps.stats import configuration_labels, group_rows, markdown, plot
from tiny import TINY_NET, run_command

ENV = {**os.environ, "WANDB_MODE": "offline"}


def _command(lip_root, sweep_dir, *overrides):
    return [
        sys.executable,
        "-m",
        "lipnet_pl.train",
        "-m",
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.num_workers=0",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "logger=none",
        "callbacks.progress_bar=null",
        "sweep_latency_s=0",  # CPU latency per job: tests/e2e/test_sweep_latency_e2e.py
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_NET,
        *overrides,
    ]


def _run(command):
    """The sweep command of :func:`_command`, run as a user runs it (:func:`tiny.run_command`)."""
    assert command[:3] == [sys.executable, "-m", "lipnet_pl.train"]
    return run_command("train", command[3:], Path.cwd(), timeout=400)


def _status(job_dir):
    return json.loads((job_dir / "job_status.json").read_text())


@pytest.mark.slow
def test_a_failing_job_is_a_row_and_the_sweep_goes_on(tmp_path, lip_root):
    sweep = tmp_path / "sweep"
    proc = _run(_command(lip_root, sweep, "data.batch_size=2,0,3"))
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: 1 of 3 sweep jobs failed: data.batch_size=0 (data.batch_size must be >= 1, got 0)"
        )
    )
    assert "Traceback" not in proc.stderr
    with (sweep / "sweep_summary.csv").open() as f:
        rows = [(r["job"], r["status"], r["reason"]) for r in csv.DictReader(f)]
    assert rows == [
        ("data.batch_size=2", "finished", ""),
        ("data.batch_size=0", "failed", "data.batch_size must be >= 1, got 0"),
        ("data.batch_size=3", "finished", ""),
    ]
    assert (sweep / "sweep_summary.png").stat().st_size > 0


@pytest.mark.slow
def test_a_relaunched_sweep_skips_the_jobs_that_finished(tmp_path, lip_root):
    sweep = tmp_path / "sweep"
    command = _command(lip_root, sweep, "data.batch_size=2", "trainer.max_epochs=1,3")
    first = subprocess.Popen(
        command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    done = sweep / "trainer.max_epochs=1"
    deadline = time.monotonic() + 300
    while not (done / "job_status.json").exists() or _status(done)["status"] != "finished":
        assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()[-3000:]
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)  # the sweep dies while (or before) its 2nd job runs
    first.wait(30)
    before = _status(done)
    assert not (sweep / "sweep_summary.csv").exists()

    again = _run(command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trainer.max_epochs=1 finished in an earlier launch of this sweep: skipped" in (
        again.stdout + again.stderr
    )
    assert _status(done) == before  # not rerun: same attempt, same start time
    assert _status(sweep / "trainer.max_epochs=3")["status"] == "finished"
    with (sweep / "sweep_summary.csv").open() as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["finished", "finished"]


@pytest.mark.slow
def test_one_node_launcher_runs_two_jobs_at_a_time_one_per_device(tmp_path, lip_root):
    sweep = tmp_path / "sweep"
    proc = _run(
        _command(
            lip_root,
            sweep,
            "data.batch_size=2",
            # ~4 s per job instead of ~0.5: long enough that the two workers' jobs overlap
            # even when one worker starts seconds after the other on a loaded machine (CI saw
            # four 0.5 s jobs run one after the other, all on slot 0)
            "trainer.max_epochs=20",
            "seed=0,1,2,3",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
        )  # fmt: skip
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = [_status(sweep / f"seed={s}") for s in range(4)]
    assert {j["device"] for j in jobs} == {"cpu0 (cores 0)", "cpu1 (cores 1)"}
    for a, b in itertools.combinations(jobs, 2):
        overlap = a["started"] < b["ended"] and b["started"] < a["ended"]
        assert not (overlap and a["device"] == b["device"]), (a, b)
    overlaps = sum(
        a["started"] < b["ended"] and b["started"] < a["ended"]
        for a, b in itertools.combinations(jobs, 2)
    )
    assert overlaps >= 1  # two at a time, not one after the other
    for t in (j["started"] for j in jobs):  # never more than two at once
        assert sum(j["started"] <= t < j["ended"] for j in jobs) <= 2


def _row(preset, seed, miou, lr, status="finished"):
    return {
        "overrides_list": [f"model/dilations={preset}", f"seed={seed}", "data.root=/x"],
        "best_val_miou": miou,
        "best_val_lr_miou": lr,
        "status": status,
    }


def test_summary_groups_seeds_and_tests_against_the_reference_with_two_standard_errors(tmp_path):
    rows = [
        *(_row("paper", s, m, 0.2) for s, m in enumerate((0.50, 0.51, 0.52))),
        *(_row("control", s, m, 0.1) for s, m in enumerate((0.40, 0.41, 0.42))),
        *(_row("none", s, m, 0.2) for s, m in enumerate((0.49, 0.53, 0.51))),
        _row("wide", 0, None, None, status="failed"),
    ]
    assert configuration_labels(rows)[0] == "model/dilations=paper"  # seed and constants dropped
    groups = {g["configuration"]: g for g in group_rows(rows, "model/dilations=paper")}
    paper, control, none = (groups[f"model/dilations={p}"] for p in ("paper", "control", "none"))
    assert paper["n"] == 3 and paper["best_val_miou_mean"] == pytest.approx(0.51)
    assert paper["best_val_miou_std"] == pytest.approx(0.01)
    assert paper["is_reference"] and paper["differs_from_reference"] is None
    assert control["differs_from_reference"] is True  # 10 points apart, SE ~0.8 points
    assert none["differs_from_reference"] is False  # same mean, within the noise
    wide = groups["model/dilations=wide"]
    assert (wide["n"], wide["jobs"], wide["differs_from_reference"]) == (0, 1, None)
    table = markdown(list(groups.values()))
    assert "| model/dilations=paper | 3/3 | 51.00 ± 1.00 | 20.00 ± 0.00 | (reference) |" in table
    assert "| model/dilations=control | 3/3 | 41.00 ± 1.00 | 10.00 ± 0.00 | yes |" in table
    assert plot(list(groups.values()), tmp_path / "s.png").stat().st_size > 0


def test_wandb_groups_a_sweep_only_in_a_multirun():
    from omegaconf import OmegaConf

    from lipnet_pl.config import compose
    from lipnet_pl.hydra_runtime import job_dirname

    cfg = compose("train", ["logger=wandb", "paths.output_dir=/tmp/unused"])
    wandb = OmegaConf.to_container(cfg.logger.wandb, resolve=True)
    assert wandb["group"] is None and wandb["job_type"] is None  # a single run has no group
    # a job's folder: the swept keys only (no multirun.yaml here: every override), sorted
    assert job_dirname("/nonexistent", ["seed=1", "model/dilations=paper"]) == (
        "model.dilations=paper,seed=1"
    )
