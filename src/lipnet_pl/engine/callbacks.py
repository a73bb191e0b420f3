"""Lightning callbacks of a training run (all listed in ``conf/callbacks/default.yaml``).

* :class:`StepCheckpoint`: ``last-step.ckpt`` every 10 minutes of training (or every N steps), so
  a run killed mid-epoch resumes close to where it died.
* :class:`ThroughputMonitor`: training images per second of the steps alone and of the wall
  clock, the share of time spent waiting for data, and a one-line warning when data-bound.
* :class:`ValidationPanels`: image | ground truth | prediction figures of the first validation
  images, saved under ``figures/`` and sent to the loggers that take images.
* :class:`ProgressBar`: Rich progress bar that reads the logged values (a host-device sync) only
  every few steps, shows the rates of :class:`ThroughputMonitor`, and has no ``v_num`` column.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
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

log = logging.getLogger(__name__)


class StepCheckpoint(ModelCheckpoint):
    """``last-step.ckpt`` every ``train_time_interval_s`` seconds of training (mid-epoch resume).

    By time, not steps: on a GPU 200 steps of LIP-Net take seconds, and every save makes all
    ranks wait for rank 0's write; 10 minutes (the default) bounds the work lost to a kill at the
    cost of one save per 10 minutes, whatever the step time. Lightning's ``train_time_interval``
    decides on rank 0 and broadcasts the decision (a collective); here that check runs only
    every ``check_every_n_steps`` steps, so the other steps stay free of it; it also saves at
    every epoch end. ``every_n_train_steps=N`` saves every N steps instead (the time interval,
    and the epoch-end save, are then off).
    """

    CHECKPOINT_NAME_LAST = "last-step"

    def __init__(
        self,
        train_time_interval_s: float | None = 600.0,
        every_n_train_steps: int | None = None,
        check_every_n_steps: int = 20,
        **kwargs: Any,
    ) -> None:
        key = "callbacks.step_checkpoint"
        if every_n_train_steps is not None:
            if every_n_train_steps < 1:
                raise ValueError(
                    f"{key}.every_n_train_steps must be >= 1 (or null: by time), got "
                    f"{every_n_train_steps}"
                )
            interval = None
        elif train_time_interval_s is None or not float(train_time_interval_s) > 0:
            raise ValueError(
                f"{key}.train_time_interval_s must be > 0 seconds (or set "
                f"{key}.every_n_train_steps), got {train_time_interval_s}"
            )
        else:
            interval = timedelta(seconds=float(train_time_interval_s))
        if check_every_n_steps < 1:
            raise ValueError(f"{key}.check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = int(check_every_n_steps)
        kwargs.setdefault("save_top_k", 0)
        kwargs.setdefault("save_last", True)
        super().__init__(
            every_n_train_steps=every_n_train_steps, train_time_interval=interval, **kwargs
        )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """By time, also at every epoch end (after validation): Lightning's ``last.ckpt`` is
        rewritten only in epochs whose val/miou enters the top k, so without this a run could
        lose up to an interval of work at an epoch end."""
        super().on_train_epoch_end(trainer, pl_module)
        if self._train_time_interval is not None and not self._should_skip_saving_checkpoint(
            trainer
        ):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        by_time = self._train_time_interval is not None
        if by_time and trainer.global_step % self.check_every_n_steps:
            return  # the same step on every rank: no rank enters the broadcast alone
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """On SIGTERM Lightning stops at the end of a batch: save there, so the relaunched run
        resumes at that step rather than at the last periodic save."""
        super().on_exception(trainer, pl_module, exception)
        stopped = isinstance(exception, SIGTERMException) and not trainer.sanity_checking
        if stopped and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


class ThroughputMonitor(Callback):
    """Training images/s of the steps alone and of the wall clock, and the data-wait share.

    * **step-only** (``images_per_second``): each step timed from ``on_train_batch_start`` to
      ``on_train_batch_end`` (forward + backward + optimiser): what the device can do. On GPU two
      CUDA events per step, synchronised only every ``sync_every`` steps and before validation.
    * **wall clock** (``wall_images_per_second``): the same images over the host time of the
      steps plus the gaps before them (waiting for the loader, the host-to-device copy, launching
      ``augment_on=device``; periodic checkpoint writes land here too, rare with the time
      cadence): what the user gets. Validation is excluded.
    * ``data_wait_share`` = gap time / wall time. When it reaches ``data_bound_share`` the run
      logs one line at its end naming the loader workers and CPU cores it had.

    The first ``warmup_steps`` steps (and the gaps before them) are skipped (compile, cuDNN
    autotuning, allocator growth, workers starting). Numbers are of this process only: a resumed
    run does not inherit the figures of the run it resumes.
    """

    def __init__(
        self, sync_every: int = 50, warmup_steps: int = 3, data_bound_share: float = 0.25
    ) -> None:
        self.sync_every = max(1, int(sync_every))
        self.warmup_steps = max(0, int(warmup_steps))
        self.data_bound_share = float(data_bound_share)
        self.images = 0
        self.seconds = 0.0
        self.wait_seconds = 0.0  # host time between a step's end and the next one's start
        self.busy_seconds = 0.0  # host time inside the timed steps
        self.host_images = 0  # images of the timed steps, counted at once (no device sync)
        self.peak_gpu_mem_mib: float | None = None
        self._steps_seen = 0
        self._start: Any = None
        self._host_start: float | None = None
        self._last_end: float | None = None
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
        line = self.data_bound_line(trainer)
        if line and trainer.is_global_zero:
            log.warning(line)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._last_end = time.perf_counter()  # the epoch's first batch is waited for too

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._steps_seen >= self.warmup_steps:
            if self._last_end is not None:
                self.wait_seconds += now - self._last_end
            self._host_start = now
            self._start = self._mark(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._steps_seen += 1
        if self._start is None:
            self._last_end = time.perf_counter()
            return
        images = int(batch["image"].shape[0]) * max(1, trainer.world_size)
        self._pending.append((self._start, self._mark(pl_module), images))
        self._start = None
        if len(self._pending) >= self.sync_every:
            self._collect(pl_module)
        self._last_end = time.perf_counter()
        self.busy_seconds += self._last_end - self._host_start
        self.host_images += images

    def on_validation_start(self, trainer, pl_module) -> None:
        self._last_end = None  # validation is not time spent waiting for training data
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
    def wall_images_per_second(self) -> float | None:
        wall = self.wait_seconds + self.busy_seconds
        return self.host_images / wall if wall > 0 and self.host_images else None

    @property
    def data_wait_share(self) -> float | None:
        wall = self.wait_seconds + self.busy_seconds
        return self.wait_seconds / wall if wall > 0 else None

    def data_bound_line(self, trainer) -> str | None:
        """One line when the steps waited for data ``data_bound_share`` of the time, else None."""
        share = self.data_wait_share
        if share is None or share < self.data_bound_share:
            return None
        dm = getattr(trainer, "datamodule", None)
        workers = getattr(dm, "num_workers", getattr(trainer.train_dataloader, "num_workers", "?"))
        where = dm.resolved_augment_on() if hasattr(dm, "resolved_augment_on") else "?"
        return (
            f"data-bound: training waited for data {share:.0%} of its time "
            f"({self.wall_images_per_second:.1f} img/s wall clock vs "
            f"{self.images_per_second or 0:.1f} img/s in the steps) with data.num_workers="
            f"{workers} per process, {cpu_cores()} CPU cores, data.augment_on={where}: add "
            f"workers{', use data.augment_on=device' if where == 'workers' else ''} or see "
            "docs/training.md#sizing-the-data-path"
        )

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
        items.update(rate_items(find_callback(trainer, ThroughputMonitor)))
        self._cached = items
        return items


def rate_items(monitor: ThroughputMonitor | None) -> dict[str, str]:
    """Progress-bar columns: wall-clock img/s (step-only img/s) and the data-wait share."""
    if monitor is None or monitor.wall_images_per_second is None:
        return {}
    step = monitor.images_per_second  # as of the last sync: reading it never syncs
    rate = f"{monitor.wall_images_per_second:.1f}" + (f" (steps {step:.1f})" if step else "")
    return {"img/s": rate, "data wait": f"{monitor.data_wait_share:.0%}"}


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity, e.g. a SLURM allocation)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


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
    return next((cb for cb in getattr(trainer, "callbacks", ()) if isinstance(cb, kind)), None)
