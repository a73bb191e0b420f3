"""Atomic checkpoint writes: a crash or SIGKILL mid-save never leaves a broken checkpoint.

The checkpoint goes to a temporary file in the same folder, is fsynced, then ``os.replace``-d over
the target (a rename within one file system is atomic on POSIX), so the previous file stays
intact until the new one is complete. A write that fails (a full disk) is one line naming the
file (a :class:`~lipnet_pl.errors.UserError`), with no temporary file left behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lipnet_pl.errors import UserError


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(file_object)`` on a temp file beside ``path``, fsync, rename over ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _write_error(path, err) from err
        raise
    try:  # persist the rename itself
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def _write_error(path: Path, err: OSError) -> UserError:
    """A full disk or a folder that went away is the user's to fix: one line naming the file."""
    return UserError(
        f"cannot write {path} ({err.strerror or err}): free space on that drive or write the "
        f"run elsewhere (hydra.run.dir=...); the previous {path.name}, if any, is intact"
    )


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
