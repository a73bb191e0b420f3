"""The runtime answers every layer shares (:mod:`lipnet_pl.hydra_runtime`): one definition each."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from lipnet_pl import hydra_runtime as rt

SRC = Path(rt.__file__).parent


@pytest.mark.parametrize(
    ("env", "rank"),
    [
        ({}, 0),
        ({"SLURM_PROCID": "3"}, 3),  # srun's tasks are the ranks
        ({"RANK": "5", "SLURM_PROCID": "1"}, 5),  # torchrun inside SLURM: RANK is the global rank
        ({"RANK": "0", "SLURM_PROCID": "1"}, 0),
    ],
)
def test_global_rank_prefers_rank_over_the_slurm_task(monkeypatch, env, rank):
    for key in ("RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert rt.global_rank() == rank
    assert rt.is_rank_zero() is (rank == 0)


def test_trainer_uses_gpu_reads_the_accelerator(monkeypatch):
    assert rt.trainer_uses_gpu(OmegaConf.create({"accelerator": "gpu"}))
    assert rt.trainer_uses_gpu(OmegaConf.create({"accelerator": "cuda"}))
    assert not rt.trainer_uses_gpu(OmegaConf.create({"accelerator": "cpu"}))
    monkeypatch.setattr(rt.torch.cuda, "is_available", lambda: True)
    assert rt.trainer_uses_gpu(OmegaConf.create({"accelerator": "auto"}))
    assert rt.trainer_uses_gpu(OmegaConf.create({}))
    monkeypatch.setattr(rt.torch.cuda, "is_available", lambda: False)
    assert not rt.trainer_uses_gpu(OmegaConf.create({"accelerator": "auto"}))


def test_outside_hydra_nothing_is_a_multirun():
    assert rt.hydra_config() is None
    assert not rt.is_multirun()
    assert rt.multirun_overrides() is None
    assert rt.job_overrides() == []
    assert rt.launcher_target() == ""
    assert rt.sweep_group("s") is None and rt.sweep_job_type() is None


def test_each_runtime_answer_has_one_definition():
    """grep the package: the multirun, rank and GPU questions are answered in one module only."""
    needles = ("RunMode.MULTIRUN", 'get("SLURM_PROCID")', 'get("RANK")', '("gpu", "cuda")')
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for needle in needles:
            if needle in text:
                assert path.name == "hydra_runtime.py", f"{needle} answered again in {path}"


@pytest.mark.parametrize("command", ["eval", "predict", "export", "bench"])
def test_only_training_multiruns_build_the_sweep_summary(command):
    from hydra import compose, initialize_config_dir

    from lipnet_pl.config import config_dir

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        train = compose("train", return_hydra_config=True)
        other = compose(command, return_hydra_config=True)
    assert "sweep_summary" in train.hydra.callbacks
    assert not other.hydra.callbacks
