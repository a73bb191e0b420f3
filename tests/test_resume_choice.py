"""What ``resume`` accepts and which checkpoint a relaunch continues (issue 28, item 2)."""

from __future__ import annotations

import os

import pytest
import torch

from lipnet_pl.errors import UserError
from lipnet_pl.training.train import newest_checkpoint, train


@pytest.mark.parametrize("value", ["false", "no", "maybe", "Auto"])
def test_resume_takes_only_its_documented_values(value, train_cfg, tmp_path):
    with pytest.raises(UserError, match=rf"resume={value}: use resume=auto .* or resume=never"):
        train(train_cfg(f"resume={value}"))
    assert not (tmp_path / "checkpoints").exists()  # refused before anything ran


def test_a_relaunch_continues_the_furthest_checkpoint_not_the_newest_file(tmp_path):
    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    for name, step, mtime in [
        ("last.ckpt", 24, 1_000_000),  # the finished run
        ("last-v1.ckpt", 2, 2_000_000),  # a later fresh start Lightning versioned
        ("last-step-v1.ckpt", 2, 3_000_000),
    ]:
        torch.save({"global_step": step, "state_dict": {}}, ckpts / name)
        os.utime(ckpts / name, (mtime, mtime))
    assert newest_checkpoint(tmp_path) == ckpts / "last.ckpt"
    (ckpts / "last-step.ckpt").write_bytes(b"truncated")  # unreadable: never preferred
    assert newest_checkpoint(tmp_path) == ckpts / "last.ckpt"
