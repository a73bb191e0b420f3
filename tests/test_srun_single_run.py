"""A single run under ``srun`` (N ranks start the same command at once): one resume checkpoint
for all ranks, synthetic data generated once, and a filesystem without locks is one line."""

from __future__ import annotations

import errno
import os
import threading

import pytest
import torch

from lipnet_pl.data import datamodule as dm_module
from lipnet_pl.data.datamodule import LIPDataModule
from lipnet_pl.errors import UserError
from lipnet_pl.sweeps import devices
from lipnet_pl.training.train import newest_checkpoint


def test_every_rank_resumes_from_the_furthest_checkpoint_whatever_the_file_times(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    further = tmp_path / "hpc_ckpt_1.ckpt"
    earlier = tmp_path / "checkpoints" / "last-step.ckpt"
    torch.save({"global_step": 14}, further)
    torch.save({"global_step": 12}, earlier)
    os.utime(further, ns=(10**18, 10**18))  # a node whose clock (or cached time) is behind
    os.utime(earlier, ns=(2 * 10**18, 2 * 10**18))
    assert newest_checkpoint(tmp_path) == further
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"truncated")
    assert newest_checkpoint(tmp_path) == further  # an unreadable file is never preferred


def test_ranks_preparing_synthetic_data_at_once_generate_it_once(tmp_path, monkeypatch):
    calls = []
    generate = dm_module.generate

    def counted(*args, **kwargs):
        calls.append(threading.get_ident())
        return generate(*args, **kwargs)

    monkeypatch.setattr(dm_module, "generate", counted)
    synthetic = dict(train=2, val=1, test=1, min_size=48, max_size=64, style="simple")
    ranks = [LIPDataModule(root=str(tmp_path / "LIP"), synthetic=synthetic) for _ in range(3)]
    threads = [threading.Thread(target=dm.prepare_data) for dm in ranks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(calls) == 1
    assert (tmp_path / "LIP" / "synthetic.json").is_file()


def test_device_slots_on_a_filesystem_without_flock_are_one_line(tmp_path, monkeypatch):
    def no_locks(handle, op):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(devices.fcntl, "flock", no_locks)
    with pytest.raises(UserError, match=r"\.devices: cannot lock .*hydra\.sweep\.dir"):
        with devices.device_slot(tmp_path / ".devices", 2):
            pass


def test_only_rank_zero_of_an_srun_writes_the_hydra_files_and_the_log():
    from lipnet_pl.cli import srun_rank_overrides

    srun = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}
    assert srun_rank_overrides(["trainer=ddp"], srun) == [
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
    ]
    assert srun_rank_overrides(["trainer=ddp"], {**srun, "SLURM_PROCID": "0"}) == []
    assert srun_rank_overrides(["-m", "seed=0,1"], srun) == []  # a sweep's jobs: their own dirs
    assert srun_rank_overrides([], {}) == []
