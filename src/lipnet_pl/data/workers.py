"""Loader workers that leave a scheduler's signals to the training process.

SLURM signals every process of a job step, DataLoader workers included: ``--signal=USR1@120``
at the time limit, submitit's USR2, SIGTERM on preemption or ``scontrol requeue``. A worker
dies of USR1/USR2 (their default action) or of SIGTERM, and the training process then fails with
``DataLoader worker (pid N) is killed by signal`` before it can save its requeue checkpoint
(:mod:`lipnet_pl.engine.requeue`). So every worker (train and validation: the validation ones
are forked in the sanity check, before the training process installs its own handlers)

* ignores SIGUSR1 and SIGUSR2;
* obeys SIGTERM only from its parent: PyTorch terminates a worker that does not exit within its
  shutdown timeout, and ``multiprocessing`` terminates daemonic workers at interpreter exit, so
  a worker that ignored SIGTERM from everyone could hang its parent's exit. SIGTERM is blocked
  and a thread reads the sender (``sigwaitinfo``); a SIGTERM from anyone else is dropped.

Lightning's own worker seeding (``seed_everything(workers=True)``) is chained: Lightning adds it
only to loaders without a ``worker_init_fn``.
"""

from __future__ import annotations

import os
import signal
import threading

SCHEDULER_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


def _obey_parent_only(parent: int) -> None:
    """Wait for blocked SIGTERMs; die of the one the parent sends, drop the others."""
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent or os.getppid() != parent:
            # the disposition is SIG_DFL (set in the main thread): unblocked here, the signal
            # ends the process as it would have without this thread
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            return


def leave_signals_to_parent() -> None:
    """In a worker process: USR1/USR2 ignored, SIGTERM honoured from the parent only."""
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):  # macOS: SIGTERM keeps its default action
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not an inherited Python handler
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    threading.Thread(
        target=_obey_parent_only, args=(os.getppid(),), name="sigterm-from-parent", daemon=True
    ).start()


class WorkerInit:
    """``worker_init_fn``: :func:`leave_signals_to_parent`, then Lightning's worker seeding when
    ``seed_everything(workers=True)`` asked for it (picklable for spawn)."""

    def __init__(self, rank: int = 0) -> None:
        self.rank = int(rank)

    def __call__(self, worker_id: int) -> None:
        leave_signals_to_parent()
        if int(os.environ.get("PL_SEED_WORKERS", 0)):
            from lightning.fabric.utilities.seed import pl_worker_init_function

            pl_worker_init_function(worker_id, rank=self.rank)
