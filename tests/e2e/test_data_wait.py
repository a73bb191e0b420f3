"""A data-bound run says so: with a dataset that sleeps 50 ms per item the training steps wait
for data most of the time, the monitor reports a data-wait share >= 0.5 and logs one line naming
the workers and cores the run had; ``run_summary.json`` holds the step-only and the wall-clock
rates and the share."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lipnet_pl.data.dataset import LIPDataset
from lipnet_pl.engine.callbacks import ThroughputMonitor, cpu_cores, rate_items
from lipnet_pl.training.train import train

SLEEP_S = 0.05


class SleepyData(Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, index: int) -> dict:
        time.sleep(SLEEP_S)
        return {"image": torch.ones(4)}


class Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch["image"]).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_a_dataset_sleeping_50_ms_per_item_makes_the_run_data_bound_in_one_line(caplog):
    monitor = ThroughputMonitor(warmup_steps=1)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor],
    )
    with caplog.at_level(logging.WARNING, logger="lipnet_pl.engine.callbacks"):
        trainer.fit(Linear(), DataLoader(SleepyData(), batch_size=2))
    assert monitor.data_wait_share >= 0.5
    assert monitor.wait_seconds >= 5 * 2 * SLEEP_S  # 5 timed steps, 2 items of 50 ms each
    assert monitor.wall_images_per_second <= 1 / SLEEP_S < monitor.images_per_second
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data-bound")]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert f"data.num_workers=0 per process, {cpu_cores()} CPU cores" in lines[0]
    shown = rate_items(monitor)  # the progress bar's columns
    assert shown["data wait"] == f"{monitor.data_wait_share:.0%}"
    assert shown["img/s"].startswith(f"{monitor.wall_images_per_second:.1f} (steps ")


def test_run_summary_holds_both_rates_and_the_data_wait_share(train_cfg, monkeypatch):
    load = LIPDataset.load

    def slow_load(self, index):
        time.sleep(SLEEP_S)
        return load(self, index)

    monkeypatch.setattr(LIPDataset, "load", slow_load)
    cfg = train_cfg("trainer.limit_train_batches=4", "callbacks.throughput.warmup_steps=1")
    summary = train(cfg)
    on_disk = json.loads(Path(cfg.summary_file).read_text())
    assert on_disk == summary
    # 3 timed steps of 2 images, each waiting >= 2 x 50 ms for its batch
    assert 0 < on_disk["train_images_per_s_wall"] < on_disk["train_images_per_s"]
    assert on_disk["train_images_per_s_wall"] < 2 / (2 * SLEEP_S)
    assert 0 < on_disk["data_wait_share"] < 1
    assert on_disk["augment_on"] == "workers" and on_disk["num_workers"] == 0
    assert on_disk["cpu_cores"] == cpu_cores()
