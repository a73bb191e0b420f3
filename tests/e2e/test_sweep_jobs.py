"""Sweeps that answer their question: failed jobs kept, relaunch skips finished jobs, N jobs at
once on N devices (never two on one), the per-configuration summary over seeds."""

from __future__ import annotations

import csv
import itertools
import json
import signal
import sys
from pathlib import Path

import pytest

from lipnet_pl.sweeps.stats import configuration_labels, group_rows, markdown, plot
from tiny import TINY_NET, run_command


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


def _run(command, cwd=None, **env):
    """The sweep command of :func:`_command`, run as a user runs it (:func:`tiny.run_command`)."""
    assert command[:3] == [sys.executable, "-m", "lipnet_pl.train"]
    return run_command("train", command[3:], cwd or Path.cwd(), timeout=400, **env)


# Test-only callbacks, importable by a sweep run in the folder holding this module (its jobs,
# and the joblib workers that run them, have the working directory on sys.path).
JOB_HOOKS = '''
import os, signal, time
from pathlib import Path

from lightning.pytorch.callbacks import Callback


def _others(job_dir):
    return [d for d in job_dir.parent.iterdir() if d.is_dir() and d.name != job_dir.name]


class WaitForAnotherJob(Callback):
    """A job starts training once another job of the sweep has started (at most timeout_s):
    jobs of two workers then overlap however many seconds apart the workers start."""

    def __init__(self, job_dir, timeout_s=60.0):
        self.job_dir, self.timeout_s = Path(job_dir), float(timeout_s)

    def on_train_start(self, trainer, pl_module):
        deadline = time.monotonic() + self.timeout_s
        while not any((d / "job_status.json").is_file() for d in _others(self.job_dir)):
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)


class DieInTheSecondJob(Callback):
    """With KILL_THE_SWEEP set, SIGKILL the sweep once its second job starts training."""

    def __init__(self, job_dir):
        self.job_dir = Path(job_dir)

    def on_train_start(self, trainer, pl_module):
        if os.environ.get("KILL_THE_SWEEP") and any(
            (d / "job_status.json").is_file() for d in _others(self.job_dir)
        ):
            os.kill(os.getpid(), signal.SIGKILL)
'''


def _hook(folder: Path, name: str) -> list[str]:
    """Overrides adding callback ``name`` of :data:`JOB_HOOKS` (written into ``folder``, the
    folder to run the sweep in)."""
    (folder / "sweep_job_hooks.py").write_text(JOB_HOOKS)
    return [
        f"+callbacks.test_hook._target_=sweep_job_hooks.{name}",
        "+callbacks.test_hook.job_dir=${paths.output_dir}",
    ]


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
    hook = _hook(tmp_path, "DieInTheSecondJob")
    command = _command(lip_root, sweep, "data.batch_size=2", "trainer.max_epochs=1,3", *hook)
    # the sweep dies (SIGKILL) once its 2nd job started training
    first = _run(command, tmp_path, KILL_THE_SWEEP="1")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    done = sweep / "trainer.max_epochs=1"
    assert _status(done)["status"] == "finished"
    assert _status(sweep / "trainer.max_epochs=3")["status"] == "running"
    before = _status(done)
    assert not (sweep / "sweep_summary.csv").exists()

    again = _run(command, tmp_path)
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
    # each job holds its training until another job has started (at most 60 s): two workers'
    # jobs overlap even when one worker starts seconds after the other on a loaded machine (CI
    # saw four short jobs run one after the other, all on slot 0); a launcher running one job
    # at a time would still show no overlap below
    hook = _hook(tmp_path, "WaitForAnotherJob")
    proc = _run(
        _command(
            lip_root,
            sweep,
            "data.batch_size=2",
            "seed=0,1,2,3",
            "hydra/launcher=local",
            "hydra.launcher.n_jobs=2",
            *hook,
        ),
        tmp_path,
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
