"""The parts of the GPU paths a CPU can check: the gpu-check DDP step's plan and environment,
and the device an ONNX Runtime session takes under DDP."""

from __future__ import annotations

from pathlib import Path

from lipnet_pl.config import compose
from lipnet_pl.evaluation.evaluate import eval_device
from lipnet_pl.workflows.gpu_steps import TIMED_STEPS, Settings, child_env, ddp_plan


def test_the_ddp_step_times_steps_on_eight_gpus_and_uses_the_jobs_cpus():
    s = Settings(out=Path("/unused"))  # 256 images, batch 32 per GPU, 2 epochs, 8 workers
    plan = ddp_plan(s, gpus=8, cpus=16)
    steps = plan["epochs"] * (s.images // plan["batch"])
    assert steps - 3 >= TIMED_STEPS  # 3 warm-up steps are not timed
    assert plan["workers"] == 2 and plan["batch"] == 256
    assert ddp_plan(s, gpus=1, cpus=4)["epochs"] == s.epochs  # 8 steps an epoch: 2 are enough


def test_the_ddp_child_does_not_inherit_the_slurm_allocation():
    env = {"PATH": "/bin", "SLURM_JOB_ID": "5", "SLURM_NTASKS": "1", "SRUN_DEBUG": "3"}
    assert child_env(env) == {"PATH": "/bin"}


def test_every_ddp_rank_opens_its_onnx_session_on_its_own_gpu(monkeypatch):
    cfg = compose("eval", ["trainer=ddp", "trainer.devices=4", "paths.output_dir=/x"])
    monkeypatch.delenv("SLURM_LOCALID", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert eval_device(cfg) == "cuda:3"
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_LOCALID", "1")  # srun: no LOCAL_RANK
    assert eval_device(cfg) == "cuda:1"
    cfg.trainer.devices = [2]
    monkeypatch.delenv("SLURM_LOCALID")
    assert eval_device(cfg) == "cuda:2"
    assert eval_device(compose("eval", ["trainer=cpu", "paths.output_dir=/x"])) == "cpu"
