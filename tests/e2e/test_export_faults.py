"""``python -m lipnet_pl.export`` on a real full disk and under kill -9: the previous export of
every format stays loadable, and no hidden temporary outlives the run (issue 28, items 3 and 5)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch
from full_disk import fill, hidden, tmpfs

from lipnet_pl.core.loader import load_model
from tiny import run_command, start_command

pytestmark = pytest.mark.slow

NAMES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt", "pretrained": "model"}


def export_args(ckpt: Path, fmt: str, out: Path, *extra: str) -> list[str]:
    return [f"ckpt_path={ckpt}", f"format={fmt}", f"output={out}", *extra]


@pytest.mark.parametrize("fmt", ["pretrained", "torchscript", "onnx"])
def test_failed_export_on_a_full_disk_keeps_the_previous_one(fmt, random_ckpt, tmp_path, cli):
    with tmpfs(tmp_path / "disk", 8 * 2**20) as disk:
        out = disk / NAMES[fmt]
        first = cli("export", export_args(random_ckpt, fmt, out))
        assert first.returncode == 0, first.stderr[-2000:]
        before = sorted(p.name for p in disk.rglob("*"))
        fill(disk, leave_bytes=16 * 2**10)  # far less than one export
        second = cli("export", export_args(random_ckpt, fmt, out))
        err = [line for line in second.stderr.splitlines() if line.strip()]
        assert second.returncode == 2, second.stderr[-3000:]
        assert len(err) == 1 and err[0].startswith("error: cannot write"), second.stderr[-3000:]
        assert "No space left on device" in err[0] and str(out) in err[0]
        (disk / "filler.bin").unlink()
        assert hidden(disk) == []
        assert sorted(p.name for p in disk.rglob("*")) == before
        assert loadable(out, fmt)


def loadable(out: Path, fmt: str) -> bool:
    """The export loads and runs (TorchScript through torch.jit, the others through the loader)."""
    if fmt == "torchscript":
        return torch.jit.load(str(out))(torch.zeros(1, 3, 48, 40)).shape[1] == 20
    return load_model(out).spec.num_classes == 20


def test_export_killed_mid_write_leaves_nothing_that_persists(random_ckpt, tmp_path):
    out = tmp_path / "out" / "model.onnx"
    args = export_args(random_ckpt, "onnx", out, "dynamic=true")
    with start_command("export", args, tmp_path) as proc:  # preloaded: start-up is not tested
        deadline = time.monotonic() + 240
        while not (out.parent.is_dir() and hidden(out.parent)) and proc.poll() is None:
            assert time.monotonic() < deadline, "the export never wrote its temporary"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export ended before it could be killed"
    assert hidden(out.parent), "killed while writing: its temporary is there"
    # the next export to the same path (static shapes: half the export time of dynamic ones,
    # which gave the killed run a wide window with its temporary on disk)
    again = run_command("export", export_args(random_ckpt, "onnx", out), tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert hidden(out.parent) == []  # the dead run's temporary is gone too
    assert load_model(out).spec.num_classes == 20
