"""Loader workers (``lipnet_pl.data.workers``) survive a scheduler's signals, also ones that arrive
before their ``worker_init_fn`` runs, and still stop quietly when their own process shuts them
down, at interpreter exit included."""

from __future__ import annotations

import os
import textwrap

import pytest

import prefork

PROGRAM = textwrap.dedent(
    """
    import os, signal, subprocess, time
    from torch.utils.data import DataLoader
    from lipnet_pl.data.workers import WorkerInit, worker_context


    def settled(pid):
        # every signal sent to the worker was taken (ignored, or read by its sigwaitinfo thread)
        # or it is gone: then "alive" below is the worker's own decision, not a race
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f if ":" in line)
        except FileNotFoundError:
            return True
        pending = int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)
        return status["State"].split()[0] in ("Z", "X") or pending == 0


    # as the project's loaders are built (LIPDataModule): workers born with the signals blocked
    loader = DataLoader(list(range(100)), batch_size=1, num_workers=2,
                        persistent_workers=True, worker_init_fn=WorkerInit(),
                        multiprocessing_context=worker_context())
    it = iter(loader)
    next(it)
    pids = [w.pid for w in it._workers]
    for sig in ("USR1", "USR2", "TERM"):  # from another process, as slurmstepd sends them
        subprocess.run(["kill", f"-{sig}", *map(str, pids)], check=True)
    deadline = time.monotonic() + 30
    while not all(map(settled, pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    print("batches", len([b for b in it]) + 1)
    print("alive", all(w.is_alive() for w in it._workers))
    it = iter(loader)  # persistent workers still up at exit: multiprocessing terminates them
    next(it)
    """
)


@pytest.mark.slow
def test_workers_ignore_signals_from_others_and_stop_at_exit(tmp_path):
    # a hang here (timeout) is a worker that ignores its parent's SIGTERM at interpreter exit.
    # Run as `python -m worker_program` forked from the preloaded interpreter (tests/prefork.py:
    # exit runs the atexit handlers, multiprocessing's termination of daemonic workers included)
    (tmp_path / "worker_program.py").write_text(PROGRAM)
    done = prefork.run("worker_program", [], tmp_path, dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["batches", "100", "alive", "True"], done.stdout
    assert "User defined signal" not in done.stderr
    # the workers multiprocessing terminates at exit end as PyTorch's own do (exit 0): no
    # "DataLoader worker (pid N) is killed by signal: Terminated" from the exit handler
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


EARLY_PROGRAM = textwrap.dedent(
    """
    import subprocess, sys, time
    from lipnet_pl.data.datamodule import LIPDataModule

    dm = LIPDataModule(sys.argv[1], batch_size=1, num_workers=2, crop_size=64)
    dm.setup("fit")
    loader = dm.val_dataloader()  # the project's loader, as training builds it
    project_init = loader.worker_init_fn


    def late_init(worker_id):
        time.sleep(1.0)  # a worker still starting (PyTorch's handlers set, the project's not)
        project_init(worker_id)


    loader.worker_init_fn = late_init
    it = iter(loader)  # forks the workers
    pids = [w.pid for w in it._workers]
    for sig in ("USR1", "USR2", "TERM"):  # while they start, from another process
        subprocess.run(["kill", f"-{sig}", *map(str, pids)], check=True)
    print("batches", sum(1 for _ in it), "of", len(loader))
    print("alive", all(w.is_alive() for w in it._workers))
    """
)


@pytest.mark.slow
def test_signals_that_reach_a_starting_worker_wait_for_its_init(tmp_path, lip_root):
    # validation workers start at the first validation, which is where a stop often arrives
    (tmp_path / "early_program.py").write_text(EARLY_PROGRAM)
    done = prefork.run("early_program", [str(lip_root)], tmp_path, dict(os.environ), timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["batches", "5", "of", "5", "alive", "True"], done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
