"""A real one-node SLURM (scripts/slurm_local.sh): a sweep through ``hydra/launcher=slurm`` where
one job is a 2-process DDP run (gloo on CPU) that ``scontrol requeue`` stops mid-way."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tiny import TINY_NET, Started, start_command

ROOT = Path(__file__).resolve().parents[2]
EPOCHS, STEPS_PER_EPOCH = 6, 4  # 8 train images, global batch 2


def _wait_for(predicate, timeout: float, what: str, proc: Started):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}: {proc.communicate()[1][-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def _squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
    return out.stdout.strip()


def _requeue(job_id: str, proc: Started) -> None:
    """``scontrol requeue``, then release the job at once (SLURM holds a requeued job ~2 min)."""
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    _wait_for(lambda: _squeue_state(job_id) == "PENDING", 120, "the requeued job to pend", proc)
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True)


def _overrides(lip_root: Path) -> list[str]:
    return [
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        f"trainer.max_epochs={EPOCHS}",
        "trainer.limit_val_batches=1",
        "logger=none",
        "callbacks.progress_bar=null",
        "callbacks.step_checkpoint.every_n_train_steps=2",
        # ranks agree every 7 steps: 7, 14, 21 are all mid-epoch (4 steps per epoch)
        "callbacks.slurm_requeue.check_every_n_steps=7",
        "sweep_latency_s=0",  # CPU latency per job: tests/e2e/test_sweep_latency_e2e.py
        *TINY_NET,
    ]


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
@pytest.mark.slurm
def test_slurm_sweep_with_a_ddp_job_requeued_mid_way(slurm, tmp_path, lip_root):
    sweep = tmp_path / "sweep"
    # the uninterrupted 2-process run to compare weights with (Lightning spawns it; no SLURM),
    # started now: it runs while the sweep waits on the scheduler. Both commands run as users run
    # them, in children of the preloaded interpreter (tiny.start_command: no 3-5 s of imports
    # each); the SLURM jobs and Lightning's second rank are fresh interpreters.
    plain = tmp_path / "uninterrupted"
    straight_run = start_command(
        "train", ["trainer=ddp_sim", *_overrides(lip_root), f"hydra.run.dir={plain}"], ROOT
    )
    sweep_args = ["-m", "hydra/launcher=slurm", f"hydra.sweep.dir={sweep}", "trainer=cpu,ddp_sim"]
    proc = start_command("train", [*sweep_args, *_overrides(lip_root)], ROOT)
    try:
        ddp = sweep / "trainer=ddp_sim"
        _wait_for((ddp / "checkpoints" / "last-step.ckpt").exists, 400, "a DDP checkpoint", proc)
        job_id = json.loads((ddp / "job_status.json").read_text())["slurm_job_id"]
        _requeue(job_id, proc)
        out, err = proc.communicate(timeout=400)
        _, straight_err = straight_run.communicate(timeout=300)
    finally:
        for running in (proc, straight_run):
            if running.poll() is None:
                running.send_signal(signal.SIGINT)
                running.wait(30)
    assert proc.returncode == 0, err[-3000:]

    with (sweep / "sweep_summary.csv").open() as f:
        rows = {r["job"]: r for r in csv.DictReader(f)}
    assert {j: r["status"] for j, r in rows.items()} == {
        "trainer=cpu": "finished",
        "trainer=ddp_sim": "finished",
    }
    assert rows["trainer=ddp_sim"]["world_size"] == "2"
    assert rows["trainer=ddp_sim"]["restart_count"] == "1"
    assert rows["trainer=ddp_sim"]["devices_per_node"] == "2"
    assert rows["trainer=ddp_sim"]["precision"] == "32-true"

    summary = json.loads((ddp / "run_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["devices_per_node"] == 2
    assert summary["restart_count"] == 1
    # the same last step as an uninterrupted run; the requeued run started where it stopped
    assert summary["global_step"] == EPOCHS * STEPS_PER_EPOCH
    logs = {p.name: p.read_text() for p in (sweep / ".submitit" / job_id).glob("*_log.*")}
    said = [line for text in logs.values() for line in text.splitlines() if "requeued:" in line]
    assert len(said) == 1 and said[0].startswith("requeued: will resume from "), said
    stopped_at = int(said[0].rsplit("(step ", 1)[1].rstrip(")"))
    assert 0 < stopped_at == summary["start_step"] < summary["global_step"]
    assert stopped_at % STEPS_PER_EPOCH != 0  # mid-epoch
    assert "requeued:" in logs[f"{job_id}_0_log.err"]  # rank 0 only
    for name, text in logs.items():
        assert "Traceback" not in text, (name, text[-3000:])
        assert "sync_dist" not in text, name
        assert "not resumable" not in text, name  # Lightning sees the loader resumes exactly

    # the same weights as the uninterrupted 2-process run
    assert straight_run.returncode == 0, straight_err[-3000:]
    assert (
        json.loads((plain / "run_summary.json").read_text())["global_step"]
        == EPOCHS * STEPS_PER_EPOCH
    )
    resumed, straight = (_weights(d / "checkpoints" / "last.ckpt") for d in (ddp, plain))
    assert resumed.keys() == straight.keys()
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=1e-5, atol=1e-6, msg=key)
