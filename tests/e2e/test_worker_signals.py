"""Loader workers (``lipnet_pl.data.workers``) survive a scheduler's signals and still stop when
their own process shuts them down, at interpreter exit included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROGRAM = textwrap.dedent(
    """
    import os, signal, subprocess, time
    from torch.utils.data import DataLoader
    from lipnet_pl.data.workers import WorkerInit

    loader = DataLoader(list(range(100)), batch_size=1, num_workers=2,
                        persistent_workers=True, worker_init_fn=WorkerInit())
    it = iter(loader)
    next(it)
    pids = [w.pid for w in it._workers]
    for sig in ("USR1", "USR2", "TERM"):  # from another process, as slurmstepd sends them
        subprocess.run(["kill", f"-{sig}", *map(str, pids)], check=True)
    time.sleep(1.0)
    print("batches", len([b for b in it]) + 1)
    print("alive", all(w.is_alive() for w in it._workers))
    it = iter(loader)  # persistent workers still up at exit: multiprocessing terminates them
    next(it)
    """
)


@pytest.mark.slow
def test_workers_ignore_signals_from_others_and_stop_at_exit(tmp_path):
    # a hang here (timeout) is a worker that ignores its parent's SIGTERM at interpreter exit
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["batches", "100", "alive", "True"], done.stdout
    assert "User defined signal" not in done.stderr
