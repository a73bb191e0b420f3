"""The sbatch recipe of docs/training.md on a real one-node SLURM (scripts/slurm_local.sh), as a
user runs it: 2 tasks, ``trainer=ddp_sim``, ``data.num_workers=2`` (SLURM signals the loader
workers too), stopped mid-epoch by ``scancel -s USR1`` (what ``--signal=SIGUSR1@120`` does at the
time limit), requeued and resumed, then stopped again by SIGTERM to the whole step (``scontrol
requeue``) and resumed again: one job, two starts saved."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny import TINY_NET

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "training.md"
DOC_FLAGS = ["trainer=ddp_sim", "data.num_workers=2"]  # the documented CPU submission
EPOCHS, STEPS_PER_EPOCH = 6, 4  # 8 train images, global batch 2
STOPS = ("scancel -s USR1", "scontrol requeue")  # the time limit's signal, then a requeue


def documented_recipe() -> tuple[str, str]:
    """The sbatch script of docs/training.md and its documented CPU submission line."""
    text = DOC.read_text()
    script = next(b for b in re.findall(r"```bash\n(.*?)```", text, re.S) if "#SBATCH" in b)
    line = f"sbatch lipnet.sbatch experiment=demo {' '.join(DOC_FLAGS)}"
    assert line in text, "docs/training.md must show the submission this test runs"
    return script, line


def _state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _submit(tmp_path: Path, lip_root: Path) -> str:
    script, _ = documented_recipe()
    (tmp_path / "lipnet.sbatch").write_text(script)
    overrides = [
        *DOC_FLAGS,
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.limit_val_batches=1",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.step_checkpoint.every_n_train_steps=2",
        "callbacks.slurm_requeue.check_every_n_steps=7",  # 7, 14, 21: all mid-epoch
        *TINY_NET,
    ]
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    # this machine has 2 CPUs: the documented 3 per task would never be scheduled
    done = subprocess.run(
        ["sbatch", "--parsable", "--cpus-per-task=1", "lipnet.sbatch", *overrides],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().split(";")[0]


def _release_when_requeued(job_id: str) -> None:
    """SLURM holds a requeued job (~2 min) before it may start again: release it at once."""
    _wait(lambda: _state(job_id) == "PENDING", 240, "the job to be requeued")
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)


@pytest.mark.slow
@pytest.mark.slurm
def test_sbatch_recipe_with_loader_workers_survives_both_signals(slurm, tmp_path, lip_root):
    """One job stopped twice: ``scancel -s USR1`` mid-way, then, once it has resumed and
    checkpointed again, ``scontrol requeue``; each stop requeues and resumes mid-epoch."""
    job_id = _submit(tmp_path, lip_root)
    run = tmp_path / "outputs" / "train" / "runs" / f"slurm_{job_id}"
    step_ckpt, train_log = run / "checkpoints" / "last-step.ckpt", run / "train.log"
    try:
        _wait(step_ckpt.exists, 400, "a step checkpoint")
        subprocess.run([*STOPS[0].split(), job_id], check=True)
        _release_when_requeued(job_id)
        # resumed (a second start in train.log) and checkpointed since: stop it again
        _wait(lambda: _state(job_id) == "RUNNING", 400, "the requeued job to run")
        _wait(lambda: train_log.read_text().count("model lipnet:") == 2, 400, "a resume")
        resumed_at = step_ckpt.stat().st_mtime_ns
        _wait(lambda: step_ckpt.stat().st_mtime_ns != resumed_at, 400, "a new step checkpoint")
        subprocess.run([*STOPS[1].split(), job_id], check=True)
        _release_when_requeued(job_id)
        _wait(lambda: _state(job_id) == "", 400, "the requeued job to end")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True)

    # rank 0 alone writes the run's .hydra/ and train.log (one line per start: 3 starts)
    assert (run / ".hydra" / "config.yaml").is_file()
    assert train_log.read_text().count("model lipnet:") == 3
    log = (tmp_path / f"lipnet-{job_id}.out").read_text()
    assert "Traceback" not in log, log[-4000:]
    assert "killed by signal" not in log, log[-4000:]
    summary = json.loads((run / "run_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["restart_count"] == len(STOPS)
    assert summary["global_step"] == EPOCHS * STEPS_PER_EPOCH  # as an uninterrupted run
    said = [line for line in log.splitlines() if "requeued:" in line]
    assert len(said) == len(STOPS), said  # one line per stop: rank 0 only
    assert all(line.startswith("requeued: will resume from ") for line in said), said
    stopped = [int(line.rsplit("(step ", 1)[1].rstrip(")")) for line in said]
    assert 0 < stopped[0] < stopped[1] == summary["start_step"] < summary["global_step"]
    assert all(step % STEPS_PER_EPOCH != 0 for step in stopped)  # both mid-epoch
