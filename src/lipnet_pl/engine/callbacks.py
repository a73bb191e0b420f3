"""Lightning callbacks of a training run (all listed in ``conf/callbacks/default.yaml``).

* :class:`StepCheckpoint`: ``last-step.ckpt`` every N optimiser steps, so a run killed mid-epoch
  resumes close to where it died.
* :class:`ThroughputMonitor`: training images per second (training steps only) for the run summary.
* :class:`ValidationPanels`: image | ground truth | prediction figures of the first validation
  images, saved under ``figures/`` and sent to the loggers that take images.
* :class:`ProgressBar`: Rich progress bar that reads the logged values (a host-device sync) only
  every few steps, and without Lightning's ``v_num`` column.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lipnet_pl.core.metrics import percent
from lipnet_pl.core.viz import denormalize, panel
from lipnet_pl.outputs import atomic_save


class StepCheckpoint(ModelCheckpoint):
    """``last-step.ckpt`` every ``every_n_train_steps`` optimiser steps (mid-epoch resume)."""

    CHECKPOINT_NAME_LAST = "last-step"

    def __init__(self, every_n_train_steps: int = 200, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ValueError(
                "callbacks.step_checkpoint.every_n_train_steps must be >= 1, got "
                f"{every_n_train_steps}"
            )
        kwargs.setdefault("save_top_k", 0)
        kwargs.setdefault("save_last", True)
        super().__init__(every_n_train_steps=every_n_train_steps, **kwargs)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """On SIGTERM Lightning stops at the end of a batch: save there, so the relaunched run
        resumes at that step rather than at the last periodic save."""
        super().on_exception(trainer, pl_module, exception)
        stopped = isinstance(exception, SIGTERMException) and not trainer.sanity_checking
        if stopped and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class ThroughputMonitor(Callback):
    """Training images/s of the training steps alone (forward + backward + optimiser; data
    loading, validation and checkpoint writes excluded), and the peak GPU memory of training.

    Each step is timed from ``on_train_batch_start`` to ``on_train_batch_end`` (Lightning runs the
    checkpoint callbacks after ours); the first ``warmup_steps`` steps of the process are skipped
    (compile, cuDNN autotuning, allocator growth). On GPU each step records two CUDA events and
    the device is synchronised only every ``sync_every`` steps and before validation, so the
    measurement does not stall training. Numbers are of this process only: a resumed run does
    not inherit the figures of the run it resumes.
    """

    def __init__(self, sync_every: int = 50, warmup_steps: int = 3) -> None:
        self.sync_every = max(1, int(sync_every))
        self.warmup_steps = max(0, int(warmup_steps))
        self.images = 0
        self.seconds = 0.0
        self.peak_gpu_mem_mib: float | None = None
        self._steps_seen = 0
        self._start: Any = None
        self._pending: list[tuple[Any, Any, int]] = []
        self._base_mem = 0

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)
            self._base_mem = torch.cuda.memory_allocated(pl_module.device)

    def on_train_end(self, trainer, pl_module) -> None:
        self._collect(pl_module)
        if pl_module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(pl_module.device) - self._base_mem
            self.peak_gpu_mem_mib = max(0, peak) / 2**20

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._steps_seen >= self.warmup_steps:
            self._start = self._mark(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps_seen += 1
        if self._start is None:
            return
        images = int(batch["image"].shape[0]) * max(1, trainer.world_size)
        self._pending.append((self._start, self._mark(pl_module), images))
        self._start = None
        if len(self._pending) >= self.sync_every:
            self._collect(pl_module)

    def on_validation_start(self, trainer, pl_module) -> None:
        self._collect(pl_module)

    @staticmethod
    def _mark(pl_module) -> Any:
        """A point in time: a recorded CUDA event on GPU (no sync), else the host clock."""
        if pl_module.device.type != "cuda":
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def _collect(self, pl_module) -> None:
        """Add the finished steps to the totals (one device sync on GPU)."""
        if not self._pending:
            return
        cuda = pl_module.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(pl_module.device)
        for start, end, images in self._pending:
            self.seconds += start.elapsed_time(end) / 1e3 if cuda else end - start
            self.images += images
        self._pending = []

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None

    @property
    def steps(self) -> int:
        """Training steps this process ran (a resumed, finished run: 0)."""
        return self._steps_seen


class ValidationPanels(Callback):
    """image | ground truth | prediction rows of the first ``num_images`` validation images.

    Saved as ``<run dir>/figures/val_panel_epoch<NNN>.png`` after every validation (not the
    sanity check) and logged to W&B / TensorBoard when those loggers are on.
    """

    def __init__(self, num_images: int = 4) -> None:
        if int(num_images) < 0:
            raise ValueError(f"callbacks.val_panels.num_images must be >= 0, got {num_images}")
        self.num_images = int(num_images)
        self._rows: tuple | None = None
        self.last_path: Path | None = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._rows = None

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._rows is not None or self.num_images == 0 or not outputs:
            return
        n = self.num_images
        self._rows = (
            batch["image"][:n].detach().float().cpu(),
            [m.cpu() for m in batch["mask"][:n]],
            outputs["logits"][:n].argmax(1).cpu(),
        )

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or self._rows is None:
            return
        from PIL import Image

        norm = pl_module.hparams["normalize"]
        palette = pl_module.class_info.palette
        rows = []
        for image, mask, pred in zip(*self._rows, strict=True):
            gt = F.interpolate(mask[None, None].float(), size=pred.shape, mode="nearest")[0, 0]
            rows.append(
                panel(denormalize(image, norm["mean"], norm["std"]), gt.long(), pred, palette)
            )
        grid = np.concatenate(rows, axis=0)
        out = Path(trainer.default_root_dir) / "figures"
        out = out / f"val_panel_epoch{trainer.current_epoch:03d}.png"
        image = Image.fromarray(grid)
        atomic_save(out, lambda tmp: image.save(tmp, format="PNG"), key="hydra.run.dir")
        self.last_path = out
        _log_image(trainer, grid)


def _log_image(trainer: pl.Trainer, grid: np.ndarray) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key="val/panel", images=[grid], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image("val/panel", grid, trainer.global_step, dataformats="HWC")


class ProgressBar(RichProgressBar):
    """RichProgressBar that reads logged values every ``metrics_every`` training batches only.

    Reading a logged tensor for display is a host-device sync; doing it every step stalls the
    GPU. Lightning's ``v_num`` (the logger version) is not shown: the run dir says it.
    """

    def __init__(self, metrics_every: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.metrics_every = max(1, int(metrics_every))
        self._cached: dict[str, Any] = {}
        self._calls = 0

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        self._calls += 1
        if trainer.training and self._cached and self._calls % self.metrics_every:
            return self._cached
        items = shown_as_percent(super().get_metrics(trainer, pl_module))
        items.pop("v_num", None)
        self._cached = items
        return items


PERCENT_METRICS = ("miou", "lr_miou", "pixel_acc", "mean_acc", "paper_miou_per_image")


def shown_as_percent(items: dict[str, Any]) -> dict[str, Any]:
    """The bar's ``val/miou`` etc. in the unit eval and the demo print (percent, with %); the
    logged values stay fractions."""
    return {
        key: percent(value)
        if key.removeprefix("val/") in PERCENT_METRICS and isinstance(value, int | float)
        else value
        for key, value in items.items()
    }


def find_callback(trainer: pl.Trainer, kind: type) -> Any | None:
    """The first callback of ``kind`` on ``trainer`` (None if there is none)."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)
