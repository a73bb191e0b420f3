"""The atomic writers of :mod:`lipnet_pl.outputs` (issue 28, items 3 and 5): a failed write keeps
the previous output, and temporaries of dead writers are removed by the next write."""

from __future__ import annotations

import os
import subprocess

import pytest

from lipnet_pl.outputs import atomic_dir, atomic_path, atomic_save, clean_stale_tree


def dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_failed_folder_write_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "config.json").write_text("v2")
        raise RuntimeError("the weights did not fit on the disk")
    assert (target / "config.json").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_swap_killed_half_way_is_undone_by_the_next_write(tmp_path):
    target = tmp_path / "model"
    aside = tmp_path / f".model.{dead_pid()}.ab12cd34.old"  # moved aside, then killed
    aside.mkdir()
    (aside / "config.json").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target):
        raise RuntimeError("fails again")
    assert (target / "config.json").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = tmp_path / f".m.onnx.{dead_pid()}.0a0b0c0d.tmp"
    live = tmp_path / f".m.onnx.{os.getppid()}.0a0b0c0d.tmp"  # a running process's
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    with atomic_path(tmp_path / "m.onnx") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "m.onnx").read_bytes() == b"whole"
    assert not dead.exists() and live.exists()
    nested = tmp_path / "labels" / "a"
    nested.mkdir(parents=True)
    (nested / f".x.png.{dead_pid()}.0a0b0c0d.tmp").write_bytes(b"half")
    atomic_save(nested / "y.png", lambda t: t.write_bytes(b"png"), clean=False)
    assert clean_stale_tree(tmp_path / "labels") == 1
    assert sorted(p.name for p in nested.iterdir()) == ["y.png"]


def test_a_writer_killed_rewriting_its_own_temporary_leaves_nothing(tmp_path):
    # the export writes the ONNX file to its temporary, then rewrites that temporary in place
    # (metadata) through a temporary of the temporary: killed there, it leaves both
    pid = dead_pid()
    outer = tmp_path / f".m.onnx.{pid}.0a0b0c0d.tmp"
    inner = tmp_path / f".{outer.name}.{pid}.1a1b1c1d.tmp"
    outer.write_bytes(b"whole model")
    inner.write_bytes(b"half")
    with atomic_path(tmp_path / "m.onnx") as tmp:
        tmp.write_bytes(b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
