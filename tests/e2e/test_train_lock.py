"""One training per run dir: a second identical launch while the first runs is refused with one
line, and a run killed with SIGKILL leaves no stale lock (issue 28, item 2)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch

from tiny import TINY_NET, run_command, start_command

pytestmark = pytest.mark.slow


def command(lip_root: Path, run_dir: Path, epochs: int) -> list[str]:
    """``python -m lipnet_pl.train`` arguments (run through the preloaded interpreter: what is
    tested is the lock, not start-up)."""
    return [
        "data=lip",
        f"data.root={lip_root}",
        "data.crop_size=[64,64]",
        "data.batch_size=2",
        "data.num_workers=0",
        "trainer=cpu",
        f"trainer.max_epochs={epochs}",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "callbacks.step_checkpoint.every_n_train_steps=1",
        "callbacks.progress_bar=null",
        "logger=none",
        f"hydra.run.dir={run_dir}",
        *TINY_NET,
    ]


def test_a_second_training_on_the_same_run_dir_is_refused_and_kill_9_frees_it(lip_root, tmp_path):
    run_dir = tmp_path / "run"
    with start_command("train", command(lip_root, run_dir, 500), tmp_path) as first:
        deadline = time.monotonic() + 240
        while not (run_dir / "checkpoints/last-step.ckpt").is_file():  # training has started
            assert first.poll() is None and time.monotonic() < deadline, "the first run ended"
            time.sleep(0.05)
        second = run_command("train", command(lip_root, run_dir, 500), tmp_path)
        assert first.poll() is None, "the first run must still be training"
        first.send_signal(signal.SIGKILL)
        first.wait()
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert second.returncode == 2, second.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), second.stderr[-3000:]
    assert f"{run_dir} is in use: another training (pid {first.pid}) runs there" in lines[0]
    # the killed run left its lock file, but not its lock: the relaunch resumes and goes on
    step = torch.load(run_dir / "checkpoints/last-step.ckpt", weights_only=True)["global_step"]
    relaunch = [*command(lip_root, run_dir, 500), f"+trainer.max_steps={step + 2}"]
    third = run_command("train", relaunch, tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    ckpt = torch.load(run_dir / "checkpoints/last-step.ckpt", weights_only=True)
    assert ckpt["global_step"] == step + 2
