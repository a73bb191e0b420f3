"""Error types that separate the user's mistakes from bugs.

Every ``python -m lipnet_pl.<command>`` prints a :class:`UserError` as ONE line naming the file or
config key and what to do, and exits with status 2, without a traceback; anything else is a bug
and keeps its traceback (see :mod:`lipnet_pl.cli`).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a config value, a missing or unreadable file, data that does not fit."""


class CheckpointError(UserError, ValueError):
    """A model file that is missing, unreadable or not written by lipnet_pl."""


class NonFiniteLossError(RuntimeError):
    """The loss or the gradients became NaN/Inf: training stops; the last good checkpoint is kept."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``docker stop``, Kubernetes, a scheduler): stop as on Ctrl-C (outputs finalised,
    training checkpointed), but exit 143, so logs and orchestrators do not read an interactive
    interrupt. A KeyboardInterrupt, so every Ctrl-C path handles it."""


class SweepFailed(Exception):
    """A multirun ended with failed jobs; the summary lists them (exit status 4)."""


class Requeued(BaseException):
    """A SLURM job stopped for a requeue (or a termination) after saving its checkpoint.

    A ``BaseException``: nothing on the way may treat it as a failure; the command layer turns it
    into one line on rank 0 and the exit status SLURM expects.
    """

    def __init__(self, ckpt_path: str, step: int, requeued: bool) -> None:
        super().__init__(ckpt_path, step, requeued)
        self.ckpt_path, self.step, self.requeued = ckpt_path, step, requeued
