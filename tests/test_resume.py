"""Fault tolerance: atomic checkpoints, SIGKILL + resume, NaN guard."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import lipnet_pl.callbacks as callbacks_mod
from lipnet_pl.callbacks import AtomicCheckpointIO
from lipnet_pl.losses import SegmentationLoss
from lipnet_pl.module import NonFiniteLossError, SegmentationModule
from lipnet_pl.train import train
from lipnet_pl.utils import compose_config
from tiny import TINY_NET, tiny_lip

EPOCHS, BATCHES = 3, 4
TINY = [
    "data=lip",
    "data.crop_size=[64,64]",
    "data.batch_size=2",
    "data.num_workers=0",
    "trainer=cpu",
    f"trainer.max_epochs={EPOCHS}",
    f"trainer.limit_train_batches={BATCHES}",
    "trainer.limit_val_batches=1",
    "callbacks.step_checkpoint.every_n_train_steps=2",
    "callbacks.progress_bar=null",
    "logger=csv",
    *TINY_NET,
]


@pytest.fixture(scope="module")
def lip_root(tmp_path_factory):
    return tiny_lip(tmp_path_factory.mktemp("lip") / "LIP", train=8, val=2, seed=2)


def test_atomic_save_keeps_previous_checkpoint_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def dies_mid_write(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(callbacks_mod.torch, "save", dies_mid_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    restored = torch.load(path, weights_only=True)
    assert restored["step"] == 1 and torch.equal(restored["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temp file left


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_reaches_same_global_step(lip_root, tmp_path):
    run_dir = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "lipnet_pl.train",
        *TINY,
        f"data.root={lip_root}",
        f"hydra.run.dir={run_dir}",
    ]
    env = {**os.environ, "WANDB_MODE": "offline"}
    first = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt_dir = run_dir / "checkpoints"
    deadline = time.monotonic() + 120
    while (
        not any(ckpt_dir.glob("last*.ckpt"))
        and first.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    still_running = first.poll() is None
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert still_running, "the run ended before its first checkpoint could be interrupted"
    assert not (run_dir / "run_summary.json").exists()
    saved = {
        p.name: torch.load(p, weights_only=True)["global_step"] for p in ckpt_dir.glob("last*.ckpt")
    }
    assert saved and max(saved.values()) < EPOCHS * BATCHES, saved

    resumed = subprocess.run(
        [*args, "ckpt_path=last"], env=env, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restoring states from the checkpoint" in resumed.stdout + resumed.stderr
    summary = json.loads((run_dir / "run_summary.json").read_text())
    # an uninterrupted run ends at max_epochs * limit_train_batches optimiser steps
    assert summary["global_step"] == EPOCHS * BATCHES
    assert summary["epochs"] == EPOCHS
    # per-class IoU and both metric families are logged every validation epoch
    header = (
        next((run_dir / "logs" / "csv").rglob("metrics.csv")).read_text().splitlines()[0].split(",")
    )
    assert {
        "val/miou",
        "val/paper_miou_per_image",
        "val/iou/Left-arm",
        "val/iou/Background",
    } <= set(header)


@pytest.mark.slow
def test_nan_loss_stops_run_and_keeps_last_good_checkpoint(lip_root, tmp_path, monkeypatch):
    from lipnet_pl.checkpoint import load_model_from_checkpoint

    real_forward = SegmentationLoss.forward
    calls = {"n": 0}

    def nan_on_fifth_call(self, logits, target):
        calls["n"] += 1
        loss = real_forward(self, logits, target)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(SegmentationLoss, "forward", nan_on_fifth_call)
    cfg = compose_config("train", [*TINY, f"data.root={lip_root}", f"paths.output_dir={tmp_path}"])
    with pytest.raises(NonFiniteLossError, match="global step 4") as err:
        train(cfg)
    assert "last good checkpoint is kept" in str(err.value)
    assert not (tmp_path / "run_summary.json").exists()
    last = tmp_path / "checkpoints" / "last-step.ckpt"
    ckpt = torch.load(last, map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4  # saved after step 4, before the NaN step
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )
    assert load_model_from_checkpoint(last).net is not None
    # nothing newer than the good checkpoint was written
    for other in (tmp_path / "checkpoints").glob("*.ckpt"):
        assert torch.load(other, map_location="cpu", weights_only=True)["global_step"] <= 4


def test_non_finite_gradients_stop_before_the_update():
    net = {
        "name": "lipnet",
        "num_classes": 20,
        "stem_channels": 8,
        "widths": [8, 8, 16, 16, 16, 16],
        "aspp_channels": 16,
        "decoder_channels": 16,
        "skip_channels": 8,
    }
    module = SegmentationModule(net=net)
    for p in module.net.parameters():
        p.grad = torch.zeros_like(p)
    module.on_before_optimizer_step(None)  # finite: no error
    next(module.net.parameters()).grad[0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="gradients became NaN/Inf at global step 0"):
        module.on_before_optimizer_step(None)
