"""Where a command writes, checked before any work starts: an ``output=`` that is a file, a
folder that cannot be created (a missing drive, a path through a file) or one without write
permission is one line naming the key, not a traceback after minutes of work."""

from __future__ import annotations

import os
from pathlib import Path

from lipnet_pl.errors import UserError


def writable_dir(path: str | os.PathLike, key: str) -> Path:
    """The folder ``path`` (``key=path`` in the config), created when missing."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(
            f"{key}={path} is a file, not a folder: pass a folder (it is created when missing)"
        )
    _make(path, key, path)
    return path


def writable_file(path: str | os.PathLike, key: str) -> Path:
    """The file ``path`` can be written: not a folder, its folder exists (or is created) and is
    writable. An existing file is replaced."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{key}={path} is a folder: pass a file name, e.g. {path / 'model'}.onnx")
    _make(path.parent, key, path)
    return path


def _make(folder: Path, key: str, value: Path) -> None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"{key}={value}: {existing} is a file, not a folder: pass another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(
            f"{key}={value}: cannot create the folder {folder} ({err.strerror or err}): is the "
            "drive mounted and the path right? pass a folder you can write to"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(
            f"{key}={value}: no permission to write in {folder}: pass a folder you can write to"
        )
