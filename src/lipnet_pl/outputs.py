"""Where a command writes, checked before any work starts: an ``output=`` that is a file, a
folder that cannot be created (a missing drive, a path through a file) or one without write
permission is one line naming the key, not a traceback after minutes of work."""

from __future__ import annotations

import contextlib
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


# --- atomic outputs: a failed or killed write never replaces (or deletes) the last good one ---
#
# Everything is first written to a hidden temporary beside its target, named
# ``.<name>.<pid>.<random>.tmp`` (a file) or ``.<name>.<pid>.<random>.tmpdir`` (a folder), then
# renamed over the target. A write that fails removes its temporary; one that was killed (kill -9,
# a power cut) leaves it, and the next write to the same target removes the temporaries of
# processes that no longer run (:func:`clean_stale`), so they cannot keep a disk full.


def write_error(path: Path, err: OSError, key: str = "output") -> UserError:
    """A full disk or a folder that went away is the user's to fix: one line naming the file."""
    return UserError(
        f"cannot write {path} ({err.strerror or err}): free space on that drive or pass "
        f"{key}=<a path elsewhere>; the previous {path.name}, if any, is intact"
    )


def _temp_name(path: Path, kind: str) -> Path:
    import secrets

    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` left by writers that died (their pid no longer runs).

    A dead writer's temporary takes its own temporaries with it: a writer that rewrote its
    temporary in place (the export stores the ONNX metadata so) and was killed doing it left
    ``..<name>.<pid>.<random>.tmp.<pid>.<random>.tmp`` beside it."""
    import shutil

    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.*"):
        parts = tmp.name[len(path.name) + 2 :].split(".")
        if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in ("tmp", "tmpdir", "old"):
            continue
        if int(parts[0]) == os.getpid() or _pid_alive(int(parts[0])):
            continue
        removed += clean_stale(tmp)
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    try:  # persist the rename itself
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, write, key: str = "output", fsync: bool = True) -> Path:
    """Call ``write(file_object)`` on a temporary beside ``path``, then rename it over ``path``.

    A write that fails (a full disk: one line naming the file, :func:`write_error`) or raises
    removes the temporary and leaves the previous ``path`` untouched."""
    with atomic_path(path, key=key, fsync=fsync) as tmp, open(tmp, "wb") as f:
        write(f)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    return Path(path)


def atomic_save(path: str | os.PathLike, save, key: str = "output", clean: bool = True) -> Path:
    """``save(temporary_path)`` then rename over ``path`` (figures, PNGs, JSON: no fsync).

    The writer must not guess the format from the suffix (``format="PNG"``): the temporary's
    name ends in ``.tmp``. ``clean=False`` skips the search for stale temporaries (many files
    into one folder: clean once with :func:`clean_stale_tree`)."""
    with atomic_path(path, key=key, fsync=False, clean=clean) as tmp:
        save(tmp)
    return Path(path)


def clean_stale_tree(folder: str | os.PathLike) -> int:
    """Remove every stale temporary under ``folder`` (see :func:`clean_stale`); how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    targets = {p.parent / p.name[1:].rsplit(".", 3)[0] for p in folder.rglob(".*.tmp*")}
    return sum(len(clean_stale(t)) for t in targets)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike, key: str = "output", fsync: bool = True, clean: bool = True
):
    """A temporary file path beside ``path`` for writers that take a path (ONNX, PIL): renamed
    over ``path`` when the block succeeds, removed when it raises (or was killed: the next call
    cleans it)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if clean:
            clean_stale(path)
    except OSError as err:
        raise write_error(path, err, key) from err
    tmp = _temp_name(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        raise write_error(path, err, key) from err
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        _fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, key: str = "output"):
    """A temporary folder beside ``path`` to fill: it replaces the folder ``path`` when the block
    succeeds; when the block raises, ``path`` keeps its previous content and the temporary goes.

    The swap is two renames (old aside, new in); a process killed between them leaves ``path``
    missing and its previous content in ``.<name>.<pid>.<random>.old``, which the next call
    puts back before writing."""
    import shutil

    path = Path(path)
    tmp = _new_temp_dir(path, key, restore=True)
    try:
        yield tmp
        aside = _temp_name(path, "old") if path.exists() else None
        if aside is not None:
            os.replace(path, aside)
        os.replace(tmp, path)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    except OSError as err:
        raise write_error(path, err, key) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(path.parent)


def _new_temp_dir(path: Path, key: str, restore: bool = False) -> Path:
    """A fresh temporary folder beside ``path`` (stale ones of dead writers removed first; with
    ``restore``, a folder a killed swap moved aside is put back); OSError -> one-line error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if restore:
            _restore_aside(path)
        clean_stale(path)
        tmp = _temp_name(path, "tmpdir")
        tmp.mkdir()
    except OSError as err:
        raise write_error(path, err, key) from err
    return tmp


def _restore_aside(path: Path) -> None:
    """A folder moved aside by a swap that was killed half-way goes back to its place."""
    if path.exists():
        return
    for aside in sorted(path.parent.glob(f".{path.name}.*.old")):
        pid = aside.name[len(path.name) + 2 :].split(".")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            os.replace(aside, path)
            return


@contextlib.contextmanager
def scratch_dir(path: str | os.PathLike, key: str = "output"):
    """A temporary working folder beside ``path`` (intermediate files of a writer), removed on
    exit; one left by a killed process is removed by the next write to ``path``."""
    import shutil

    path = Path(path)
    tmp = _new_temp_dir(path, key)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def exclusive_lock(folder: str | os.PathLike, what: str, hint: str):
    """Hold ``<folder>/.lock`` for the block; a second holder is refused with one line.

    ``fcntl.flock`` on an open file: the kernel drops the lock when the process ends however it
    ends (kill -9 included), so a dead run never leaves a stale lock. The file stays (removing it
    would let two runs lock two different files)."""
    import fcntl

    folder = Path(folder)
    path = folder / ".lock"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise write_error(path, err, "hydra.run.dir") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise UserError(
                f"{folder} is in use: {what} (pid {holder}) runs there; {hint}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock
