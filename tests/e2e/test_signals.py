"""SIGTERM (``docker stop``, Kubernetes, a scheduler) to a real command process: exit 143 with
one line, ``error: terminated``; training leaves a checkpoint to resume from, predict a playable
video. (Every command's exit status on SIGTERM is also in the contract table.)"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import av
import pytest
import torch

from hostile import live_server, write_ts
from lipnet_pl.training.train import check_resumable
from tiny import start_command, tiny_train_overrides


def terminate_when(
    command: str, args: list[str], cwd: Path, ready: Callable[[], bool], timeout: float = 180
) -> subprocess.CompletedProcess:
    """Start ``python -m lipnet_pl.<command>`` (preloaded: start-up is not what is tested), send
    SIGTERM once ``ready()``, wait for it."""
    with start_command(command, args, cwd) as proc:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and not ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert still_running, f"{command} ended before the signal: {err[-2000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.slow
def test_sigterm_during_training_exits_143_and_checkpoints_where_it_stopped(lip_root, tmp_path):
    run = tmp_path / "run"
    args = tiny_train_overrides(
        lip_root,
        None,
        "trainer.max_epochs=1000",
        "trainer.limit_train_batches=4",
        "callbacks.step_checkpoint.every_n_train_steps=1000",  # only SIGTERM writes last-step
        f"hydra.run.dir={run}",
    )
    epoch_end = run / "checkpoints" / "last.ckpt"
    proc = terminate_when("train", args, tmp_path, epoch_end.exists)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == "error: terminated"
    assert "Traceback" not in proc.stderr
    stopped = run / "checkpoints" / "last-step.ckpt"
    check_resumable(stopped)  # a training checkpoint with the loops' state
    state = torch.load(stopped, map_location="cpu", weights_only=False)
    assert state["global_step"] >= 4  # at least the first epoch, saved at the stop


@pytest.mark.slow
def test_sigterm_during_a_live_stream_finalises_the_video_and_exits_143(trained_ckpt, tmp_path):
    # 6 s of video: more than FFmpeg's 5 s analysis window, so opening does not wait for more
    clip = write_ts(tmp_path / "clip.ts", frames=150).read_bytes()
    out = tmp_path / "out"
    video = out / "stall.ts_overlay.mp4"
    with live_server(clip) as url:  # the camera sends 150 frames, then nothing new
        args = [
            f"ckpt_path={trained_ckpt}",
            f"input={url}/stall.ts",
            "device=cpu",
            f"output={out}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]
        proc = terminate_when("predict", args, tmp_path, video.exists)  # frame 1 is encoded
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == "error: terminated"
    assert "Traceback" not in proc.stderr
    with av.open(str(video)) as container:  # playable: the encoder was flushed, moov written
        assert 1 <= sum(1 for _ in container.decode(video=0)) <= 150
