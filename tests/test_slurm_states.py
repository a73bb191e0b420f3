"""The SLURM launcher's reading of job states under a busy scheduler (no SLURM needed: squeue and
the submitit job are stand-ins)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
from lipnet_pl.sweeps import slurm  # noqa: E402
from lipnet_pl.sweeps.jobs import read_status, write_status  # noqa: E402


def _squeue(monkeypatch, returncode: int, stdout: str = "", stderr: str = "") -> None:
    done = subprocess.CompletedProcess([], returncode, stdout, stderr)
    monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: done)


def test_a_failed_squeue_is_not_an_ended_job(monkeypatch):
    _squeue(monkeypatch, 1, stderr="slurm_load_jobs error: Socket timed out on send/recv")
    assert slurm.slurm_state("7") == slurm.UNKNOWN
    _squeue(monkeypatch, 1, stderr="slurm_load_jobs error: Invalid job id specified")
    assert slurm.slurm_state("7") is None  # forgotten
    _squeue(monkeypatch, 0, stdout="RUNNING\n")
    assert slurm.slurm_state("7") == "RUNNING"


def _job(tmp_path: Path) -> SimpleNamespace:
    paths = SimpleNamespace(result_pickle=tmp_path / "7_result.pkl", stderr=tmp_path / "7.err")
    return SimpleNamespace(job_id="7", paths=paths)


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(slurm, "POLL_S", 0.01)
    monkeypatch.setattr(slurm, "RESULT_GRACE_S", 0.3, raising=False)


def test_squeue_failing_for_a_while_waits_for_the_result(tmp_path, monkeypatch, fast):
    from submitit.core.utils import cloudpickle_dump

    job = _job(tmp_path)
    states = iter([slurm.UNKNOWN] * 20)

    def state(job_id):
        value = next(states, None)
        if value is None:  # squeue answers again: the job has written its result meanwhile
            cloudpickle_dump(("success", "result"), job.paths.result_pickle)
            return "COMPLETED"
        return value

    monkeypatch.setattr(slurm, "slurm_state", state)
    assert slurm._wait(job, tmp_path / "job", ["a=1"]) == "result"


def test_a_completed_job_whose_result_is_late_keeps_its_finished_status(
    tmp_path, monkeypatch, fast
):
    job_dir = tmp_path / "job"
    write_status(job_dir, status="finished")
    (job_dir / "run_summary.json").write_text(json.dumps({"best_val_miou": 0.5}))
    monkeypatch.setattr(slurm, "slurm_state", lambda job_id: "COMPLETED")
    ret = slurm._wait(_job(tmp_path), job_dir, ["a=1"])
    assert ret.return_value == {"best_val_miou": 0.5}
    assert read_status(job_dir)["status"] == "finished"


def test_a_job_that_failed_without_a_result_is_a_failed_row(tmp_path, monkeypatch, fast):
    job_dir = tmp_path / "job"
    write_status(job_dir, status="running")
    monkeypatch.setattr(slurm, "slurm_state", lambda job_id: "OUT_OF_MEMORY")
    slurm._wait(_job(tmp_path), job_dir, ["a=1"])
    status = read_status(job_dir)
    assert status["status"] == "failed"
    assert "ended OUT_OF_MEMORY without a result" in status["reason"]


def test_slurm_jobs_get_a_cpu_per_loader_worker_and_memory_per_gpu():
    from lipnet_pl.config import compose

    cfg = compose(
        "train", ["trainer=ddp", "trainer.devices=4", "data.num_workers=6", "paths.output_dir=/x"]
    )
    size = slurm.job_size(cfg.trainer)
    params = {"cpus_per_task": None, "mem_gb": None}
    assert slurm.default_resources(cfg, params, size) == {"cpus_per_task": 7, "mem_gb": 128}
    assert slurm.default_resources(cfg, {"cpus_per_task": 2, "mem_gb": 64}, size) == {}
    cpu = compose("train", ["trainer=ddp_sim", "data.num_workers=2", "paths.output_dir=/x"])
    assert slurm.default_resources(cpu, params, slurm.job_size(cpu.trainer)) == {"cpus_per_task": 3}
