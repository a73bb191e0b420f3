"""SLURM requeue, owned by the training process (not by Lightning's handler, not by submitit).

Only the training process can save an exact checkpoint at the moment SLURM warns it; submitit's
own requeue would resubmit the job with nothing saved, and Lightning's saves from inside the
signal handler (wherever the step is), requeues from rank 0 and leaves the other ranks to die on
a closed connection. Here, under SLURM:

* SIGUSR1 / SIGUSR2 (``#SBATCH --signal=USR1@120``, submitit's ``USR2@signal_delay_s``, a
  preemption warning) and SIGTERM (``scontrol requeue``, preemption, ``scancel``) only set a flag;
* every ``check_every_n_steps`` optimiser steps the ranks agree on the largest flag (one int,
  all-reduce max: a signal that reached one node only counts), so every rank stops after the
  SAME step; all ranks save ``hpc_ckpt_<n>.ckpt`` in the run dir, exactly as
  a step checkpoint (``resume=auto`` picks it up), rank 0 asks ``scontrol requeue`` after a USR
  signal, and :class:`~lipnet_pl.errors.Requeued` ends ``fit`` on every rank;
* the command layer prints ``requeued: will resume from <ckpt> (step N)`` on rank 0 only and
  exits 0 (a task that exits non-zero is reported by ``srun`` as a failure); a SIGTERM that was
  not a requeue (``scancel``) ends in ``error: terminated`` and 143 instead.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from typing import Any

import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import Callback

from lipnet_pl.errors import Requeued

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


def under_slurm() -> bool:
    """True inside a SLURM job step whose tasks are the training ranks (``srun``/submitit)."""
    return SLURMEnvironment.detect()


def cluster_plugins() -> list[Any]:
    """Lightning's SLURM environment without its own requeue handler (this module owns it)."""
    return [SLURMEnvironment(auto_requeue=False)] if under_slurm() else []


def slurm_job_id() -> str | None:
    """``<array job>_<task>`` for an array task (what ``scontrol requeue`` wants), else the id."""
    array_id, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array_id}_{task}" if array_id and task else os.environ.get("SLURM_JOB_ID")


def restart_count() -> int:
    """How often SLURM restarted this job (``SLURM_RESTART_COUNT``; 0 outside SLURM)."""
    return int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def _requeue_pending(job_id: str) -> bool:
    """Whether SLURM is requeueing this job: its ``Restarts`` went past our restart count."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", job_id], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    found = re.search(r"Restarts=(\d+)", out)
    return found is not None and int(found.group(1)) > restart_count()


def _ask_requeue(job_id: str) -> bool:
    """``scontrol requeue``: whether SLURM requeues the job.

    The requeue SIGTERMs every process of the job, scontrol itself too when it has not exited by
    then (it died of it and the run reported a failed requeue that had happened): scontrol runs
    with SIGTERM blocked (a child inherits the mask), and one that failed anyway counts when the
    job's restart count went up."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        done = subprocess.run(["scontrol", "requeue", job_id], capture_output=True)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    if done.returncode == 0 or _requeue_pending(job_id):
        return True
    log.warning("scontrol requeue %s failed (%s): %s", job_id, done.returncode, done.stderr.strip())
    return False


class SlurmRequeue(Callback):
    """Checkpoint and stop on a SLURM warning or termination signal; see the module doc."""

    def __init__(self, check_every_n_steps: int = 10) -> None:
        if int(check_every_n_steps) < 1:
            raise ValueError(
                "callbacks.slurm_requeue.check_every_n_steps must be >= 1, got "
                f"{check_every_n_steps}"
            )
        self.check_every_n_steps = int(check_every_n_steps)
        self.received = 0
        self.start_step: int | None = None  # > 0 after a resume (the run summary records it)
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        self.received = int(signum)

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = int(trainer.global_step)
        # after Lightning registered its handlers (which restore the originals at teardown)
        if under_slurm():
            self._previous = {sig: signal.signal(sig, self._note) for sig in SIGNALS}

    def on_train_end(self, trainer, pl_module) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._previous or trainer.global_step % self.check_every_n_steps:
            return
        received = self._agreed_signal(trainer, pl_module)
        if received:
            self._stop(trainer, received)

    def _agreed_signal(self, trainer, pl_module) -> int:
        """The largest flag over the ranks, on every rank: all ranks stop after the same step,
        also when the signal reached one node only (SIGTERM 15 > SIGUSR2 12 > SIGUSR1 10)."""
        flag = torch.tensor(self.received, dtype=torch.int32, device=pl_module.device)
        return int(trainer.strategy.reduce(flag, reduce_op="max"))

    def _stop(self, trainer, received: int) -> None:
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        trainer.save_checkpoint(path, weights_only=False)
        job_id = slurm_job_id() or ""
        requeued = False
        if trainer.is_global_zero and job_id:
            if received == signal.SIGTERM:
                requeued = _requeue_pending(job_id)
            else:
                requeued = _ask_requeue(job_id)
        requeued = bool(trainer.strategy.broadcast(requeued, src=0))  # every rank exits alike
        raise Requeued(str(path), int(trainer.global_step), requeued)
