"""Atomic checkpoint writes: a crash or SIGKILL mid-save never leaves a broken checkpoint.

The checkpoint goes to a temporary file in the same folder, is fsynced, then ``os.replace``-d over
the target (a rename within one file system is atomic on POSIX), so the previous file stays
intact until the new one is complete. A write that fails (a full disk) is one line naming the
file (a :class:`~lipnet_pl.errors.UserError`), with no temporary file left behind.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lipnet_pl import outputs


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, rename over ``path``
    (:func:`lipnet_pl.outputs.atomic_write`; a full disk names ``hydra.run.dir``)."""
    return outputs.atomic_write(path, write, key="hydra.run.dir")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` that never leaves a half-written file at ``path``.

    Serialised in memory first: torch.save turns a failed write of a file object into a
    RuntimeError without the OS error (a full disk would read like a bug)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda f: f.write(buffer.getbuffer()))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO whose local saves are atomic (remote URLs go through fsspec)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        if "://" in str(path) and not str(path).startswith("file://"):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        atomic_torch_save(checkpoint, str(path).removeprefix("file://"))
