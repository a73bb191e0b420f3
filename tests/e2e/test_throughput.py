"""Training images/s counts training steps only: not warm-up steps, validation or checkpoint
writes, and not the figures of an earlier run."""

from __future__ import annotations

import time

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lipnet_pl.engine.callbacks import ThroughputMonitor

STEP_S, WARMUP_S, VAL_S = 0.01, 0.3, 0.5


class SleepyModule(pl.LightningModule):
    """Training steps take STEP_S (the first two WARMUP_S, like compilation), validation VAL_S."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        time.sleep(WARMUP_S if self.steps <= 2 else STEP_S)
        return self.layer(batch["image"]).mean()

    def validation_step(self, batch, batch_idx):
        time.sleep(VAL_S)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader() -> DataLoader:
    return DataLoader([{"image": torch.ones(4)} for _ in range(10)], batch_size=2)


def test_throughput_times_training_steps_only(tmp_path):
    monitor = ThroughputMonitor(sync_every=50, warmup_steps=2)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor, ModelCheckpoint(tmp_path, save_last=True)],
        default_root_dir=tmp_path,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(SleepyModule(), loader(), loader())
    assert monitor.images == 8 * 2  # 10 steps, 2 warm-up steps not counted, batch 2
    # 8 steps of 10 ms (+ overhead); validation (2 x 0.5 s) and warm-up (0.6 s) excluded
    assert STEP_S * 8 <= monitor.seconds < 0.3
    assert monitor.images_per_second > 16 / 0.3


def test_a_resumed_run_reports_only_its_own_steps():
    """The figures are this process's: nothing is saved into (or restored from) checkpoints."""
    monitor = ThroughputMonitor()
    assert monitor.state_dict() == {}
    monitor.load_state_dict({"images": 1000, "seconds": 1.0})
    assert monitor.images_per_second is None
