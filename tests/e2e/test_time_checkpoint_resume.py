"""A run resumed from a mid-epoch ``last-step.ckpt`` written by TIME ends with the weights of the
uninterrupted run, bit for bit, with augmentation in the workers and on the device alike."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import model_checkpoint as lightning_checkpoint

from lipnet_pl.config import compose
from lipnet_pl.engine.callbacks import StepCheckpoint
from lipnet_pl.engine.lightning_module import SegmentationModule
from lipnet_pl.training.train import train
from tiny import tiny_train_overrides

STEP_MINUTES, BATCHES, EPOCHS = 1.0, 4, 2


@pytest.fixture
def one_minute_per_step(monkeypatch):
    """Lightning's ModelCheckpoint clock moves one minute at each training step's start."""
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(lightning_checkpoint, "time", SimpleNamespace(monotonic=lambda: clock.now))

    def tick(self, batch, batch_idx):
        clock.now += 60 * STEP_MINUTES

    monkeypatch.setattr(SegmentationModule, "on_train_batch_start", tick, raising=False)
    return clock


def run(lip_root, out, augment_on, *extra):
    overrides = tiny_train_overrides(
        lip_root,
        out,
        f"data.augment_on={augment_on}",
        f"trainer.max_epochs={EPOCHS}",
        f"trainer.limit_train_batches={BATCHES}",
        "trainer.limit_val_batches=1",
        "callbacks.step_checkpoint.train_time_interval_s=330",  # 5.5 min: saved at step 6 only
        "callbacks.step_checkpoint.check_every_n_steps=1",
        *extra,
    )
    return train(compose("train", overrides))


def weights(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return ckpt["global_step"], ckpt["epoch"], ckpt["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("augment_on", ["workers", "device"])
def test_resume_after_a_time_checkpoint_is_exact(
    lip_root, tmp_path, one_minute_per_step, monkeypatch, augment_on
):
    mid = tmp_path / "mid.ckpt"
    save_last = StepCheckpoint._save_last_checkpoint

    def keep_the_mid_epoch_one(self, trainer, candidates):
        save_last(self, trainer, candidates)
        if trainer.global_step == 6:  # saved by time (the epoch ends are steps 4 and 8)
            shutil.copy(self.last_model_path, mid)

    monkeypatch.setattr(StepCheckpoint, "_save_last_checkpoint", keep_the_mid_epoch_one)
    run(lip_root, tmp_path / "reference", augment_on)
    step, epoch, _ = weights(mid)
    assert (step, epoch) == (6, 1)  # in the middle of the second epoch

    one_minute_per_step.now = 0.0
    run(lip_root, tmp_path / "resumed", augment_on, f"ckpt_path={mid}")
    # last-step.ckpt: by time, StepCheckpoint also saves at every epoch end (Lightning's
    # last.ckpt only when val/miou improves)
    ref_step, _, ref = weights(tmp_path / "reference" / "checkpoints" / "last-step.ckpt")
    got_step, _, got = weights(tmp_path / "resumed" / "checkpoints" / "last-step.ckpt")
    assert ref_step == got_step == EPOCHS * BATCHES
    assert ref.keys() == got.keys()
    for key, value in ref.items():
        assert torch.equal(value, got[key]), key
