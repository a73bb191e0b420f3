"""Loader workers that leave a scheduler's signals to the training process.

SLURM signals every process of a job step, DataLoader workers included: ``--signal=USR1@120``
at the time limit, submitit's USR2, SIGTERM on preemption or ``scontrol requeue``. A worker
dies of USR1/USR2 (their default action) or of SIGTERM (PyTorch's worker handler re-raises one
that its parent did not send), and the training process then fails with ``DataLoader worker
(pid N) is killed by signal`` before it can save its requeue checkpoint
(:mod:`lipnet_pl.engine.requeue`). So every worker (train and validation: validation workers
are started at the first validation, often right when a stop arrives)

* starts with the three signals blocked (:func:`worker_context`: the loaders' multiprocessing
  context blocks them in the forking thread around ``Process.start``), so one that arrives
  before its ``worker_init_fn`` runs waits instead of killing it;
* then ignores SIGUSR1 and SIGUSR2 (a pending one is discarded);
* obeys SIGTERM only from its parent and then exits 0, as PyTorch's own worker handler does
  (the parent terminates its workers when it shuts them down and at interpreter exit, and its
  SIGCHLD check reports a worker that died of a signal as a crash). SIGTERM stays blocked and a
  thread reads the sender (``sigwaitinfo``); a SIGTERM from anyone else is dropped.

Lightning's own worker seeding (``seed_everything(workers=True)``) is chained: Lightning adds it
only to loaders without a ``worker_init_fn``.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal
import threading

SCHEDULER_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


def _obey_parent_only(parent: int) -> None:
    """Wait for blocked SIGTERMs; exit 0 on the one the parent sends (or once orphaned), drop
    the others."""
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid == parent or os.getppid() != parent:
            os._exit(0)  # PyTorch's worker SIGTERM handler does the same: not a crash


def leave_signals_to_parent() -> None:
    """In a worker process: USR1/USR2 ignored, SIGTERM honoured from the parent only."""
    for sig in (signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    if not hasattr(signal, "sigwaitinfo"):  # macOS: PyTorch's SIGTERM handler stays
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SCHEDULER_SIGNALS)
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # a loader of another context
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not PyTorch's handler, not a Python one
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGUSR2})
    threading.Thread(
        target=_obey_parent_only, args=(os.getppid(),), name="sigterm-from-parent", daemon=True
    ).start()


class _BlockedStartProcess(multiprocessing.context.Process):
    """A process of the default start method that is born with the scheduler signals blocked
    (a child inherits the forking thread's signal mask, across exec too)."""

    def start(self) -> None:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SCHEDULER_SIGNALS)
        try:
            super().start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _WorkerContext(multiprocessing.context.DefaultContext):
    Process = _BlockedStartProcess


def worker_context() -> multiprocessing.context.BaseContext:
    """The ``multiprocessing_context`` of the project's loaders (workers start with the
    scheduler signals blocked until :func:`leave_signals_to_parent`)."""
    return _WorkerContext(multiprocessing.get_context())


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
