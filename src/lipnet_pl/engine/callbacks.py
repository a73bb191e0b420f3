"""Lightning callbacks of a training run (all listed in ``conf/callbacks/default.yaml``).

* :class:`StepCheckpoint`: ``last-step.ckpt`` every N optimiser steps, so a run killed mid-epoch
  resumes close to where it died.
* :class:`ThroughputMonitor`: training images per second for the run summary.
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

from lipnet_pl.core.viz import denormalize, panel


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
    """Training images/s: forward + backward + optimiser time per batch (data loading excluded),
    and the peak GPU memory of training.

    On GPU the device is synchronised only at the end of the measured window (every
    ``sync_every`` batches), not per batch, so the measurement does not stall training.
    """

    def __init__(self, sync_every: int = 50) -> None:
        self.sync_every = max(1, int(sync_every))
        self.images = 0
        self.seconds = 0.0
        self._window_start: float | None = None
        self._window_images = 0
        self.peak_gpu_mem_mib: float | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":
            self.peak_gpu_mem_mib = torch.cuda.max_memory_allocated(pl_module.device) / 2**20

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._window_start is None:
            self._sync(pl_module)
            self._window_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._window_images += int(batch["image"].shape[0]) * max(1, trainer.world_size)
        if (batch_idx + 1) % self.sync_every == 0:
            self._close_window(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._close_window(pl_module)

    def _close_window(self, pl_module) -> None:
        if self._window_start is None:
            return
        self._sync(pl_module)
        self.seconds += time.perf_counter() - self._window_start
        self.images += self._window_images
        self._window_start, self._window_images = None, 0

    @staticmethod
    def _sync(pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images = int(state_dict.get("images", 0))
        self.seconds = float(state_dict.get("seconds", 0.0))


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
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(out)
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
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        self._cached = items
        return items


def find_callback(trainer: pl.Trainer, kind: type) -> Any | None:
    """The first callback of ``kind`` on ``trainer`` (None if there is none)."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)
