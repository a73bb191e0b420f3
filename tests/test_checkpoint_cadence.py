"""``last-step.ckpt`` goes by training time (a fake clock here: one minute per step), checked
only every ``check_every_n_steps`` steps, plus every epoch end; ``every_n_train_steps`` still
saves by steps."""

from __future__ import annotations

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.callbacks import model_checkpoint as lightning_checkpoint
from torch.utils.data import DataLoader

from lipnet_pl.engine.callbacks import StepCheckpoint

MINUTE = 60.0


class Clock(Callback):
    """Lightning's ModelCheckpoint reads ``time.monotonic()``; this clock moves one minute per
    training step (at the step's start), nothing else."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.now += MINUTE


class SavedAt(Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        self.steps.append(trainer.global_step)


class Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def saves(tmp_path, monkeypatch, steps: int = 20, epochs: int = 1, **kwargs) -> list[int]:
    clock, saved = Clock(), SavedAt()
    monkeypatch.setattr(lightning_checkpoint, "time", SimpleNamespace(monotonic=clock.monotonic))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[clock, saved, StepCheckpoint(dirpath=tmp_path, **kwargs)],
        default_root_dir=tmp_path,
    )
    trainer.fit(Linear(), DataLoader(torch.ones(steps // epochs, 4), batch_size=1))
    assert (tmp_path / "last-step.ckpt").is_file() == bool(saved.steps)
    return saved.steps


def test_checkpoints_go_by_training_time(tmp_path, monkeypatch):
    # 5 min interval, 1 min per step, checked every step: steps 5, 10, 15, 20
    assert saves(tmp_path, monkeypatch, train_time_interval_s=300, check_every_n_steps=1) == [
        5,
        10,
        15,
        20,
    ]


def test_the_time_is_checked_every_n_steps_only(tmp_path, monkeypatch):
    # checked at steps 4, 8, 12, 16, 20: 8 (8 min), then 16 (8 min later; at 12 only 4 min);
    # 20 is the epoch end
    got = saves(tmp_path, monkeypatch, train_time_interval_s=300, check_every_n_steps=4)
    assert got == [8, 16, 20]


def test_the_default_ten_minutes_saves_only_at_the_end_of_a_short_run(tmp_path, monkeypatch):
    # 9 minutes: no save by time, one at the epoch end
    assert saves(tmp_path, monkeypatch, steps=9, check_every_n_steps=1) == [9]


def test_by_time_it_also_saves_at_every_epoch_end(tmp_path, monkeypatch):
    # 3 epochs of 4 steps, 5 min interval, 1 min per step: by time at 5 and 10, epoch ends 4, 8, 12
    got = saves(
        tmp_path, monkeypatch, steps=12, epochs=3, check_every_n_steps=1, train_time_interval_s=300
    )
    assert got == [4, 5, 8, 10, 12]


def test_every_n_train_steps_still_saves_by_steps(tmp_path, monkeypatch):
    assert saves(tmp_path, monkeypatch, steps=9, every_n_train_steps=3) == [3, 6, 9]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train_time_interval_s": 0}, "train_time_interval_s must be > 0 seconds"),
        ({"train_time_interval_s": None}, "train_time_interval_s must be > 0 seconds"),
        ({"every_n_train_steps": 0}, "every_n_train_steps must be >= 1"),
        ({"check_every_n_steps": 0}, "check_every_n_steps must be >= 1"),
    ],
)
def test_bad_cadence_settings_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=f"callbacks.step_checkpoint.{message}"):
        StepCheckpoint(**kwargs)
