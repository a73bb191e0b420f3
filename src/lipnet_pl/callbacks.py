"""Fault-tolerance and bookkeeping pieces plugged into the Lightning Trainer.

* :class:`AtomicCheckpointIO` writes a checkpoint to a temporary file in the same folder, fsyncs
  it and ``os.replace``-s it over the target, so a SIGKILL or power loss mid-save leaves the
  previous checkpoint intact (a rename within one file system is atomic on POSIX).
* :class:`StepCheckpoint` saves ``last-step.ckpt`` every N optimiser steps so a run killed
  mid-epoch resumes close to where it died (``ckpt_path=last`` picks the newest ``last*.ckpt``).
* :class:`ThroughputMonitor` measures training images per second for the run summary.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` that never leaves a half-written file at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # persist the rename itself
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO whose saves are atomic on local disks (temp file + fsync + rename)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)  # remote: fsspec
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))


class StepCheckpoint(ModelCheckpoint):
    """``last-step.ckpt`` every ``every_n_train_steps`` optimiser steps (mid-epoch resume)."""

    CHECKPOINT_NAME_LAST = "last-step"

    def __init__(self, every_n_train_steps: int = 200, **kwargs: Any) -> None:
        if every_n_train_steps < 1:
            raise ValueError(
                f"callbacks.step_checkpoint.every_n_train_steps must be >= 1, got {every_n_train_steps}"
            )
        kwargs.setdefault("save_top_k", 0)
        kwargs.setdefault("save_last", True)
        super().__init__(every_n_train_steps=every_n_train_steps, **kwargs)


class ThroughputMonitor(Callback):
    """Training images per second: forward + backward + optimiser time per batch (data loading excluded)."""

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._batch_start: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._batch_start is None:
            return
        self.seconds += time.perf_counter() - self._batch_start
        self.images += int(batch["image"].shape[0]) * max(1, trainer.world_size)

    @property
    def images_per_second(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images, "seconds": self.seconds}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.images = int(state_dict.get("images", 0))
        self.seconds = float(state_dict.get("seconds", 0.0))


def find_callback(trainer: pl.Trainer, kind: type) -> Any | None:
    """The first callback of ``kind`` on ``trainer`` (None if there is none)."""
    return next((cb for cb in trainer.callbacks if isinstance(cb, kind)), None)
