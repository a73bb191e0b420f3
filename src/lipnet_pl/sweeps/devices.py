"""One device per job for the one-node parallel launcher (``hydra/launcher=local``).

hydra-joblib-launcher runs ``n_jobs`` jobs at once but does not say which device each may use
(every job would take GPU 0). Here each job takes a free slot of ``n_jobs`` from lock files in
``<sweep dir>/.devices`` (``flock``: a slot frees itself when its job ends, even when the job's
process dies) and keeps it for its whole run: on GPUs the slot is the CUDA device
(``trainer.devices=[slot]``); on CPU it is a share of the cores (affinity and torch threads).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from lipnet_pl.errors import UserError
from lipnet_pl.hydra_runtime import trainer_uses_gpu

CORES = sorted(os.sched_getaffinity(0))  # before any job of this worker process narrowed it


@contextmanager
def device_slot(folder: Path, count: int, poll_s: float = 0.2) -> Iterator[int]:
    """Hold one of ``count`` slots (lock files in ``folder``) while the block runs."""
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        for slot in range(count):
            handle = (folder / f"{slot}.lock").open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            except OSError as err:  # ENOSYS, EOPNOTSUPP, ENOLCK: no locks on this filesystem
                handle.close()
                raise UserError(
                    f"{folder}: cannot lock {folder / f'{slot}.lock'} ({err.strerror}); "
                    "hydra/launcher=local needs a filesystem with flock for its device slots: "
                    "put the sweep on a local disk (hydra.sweep.dir=/local/path)"
                ) from None
            try:
                yield slot
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        time.sleep(poll_s)


def pin(cfg: DictConfig, slot: int, count: int) -> str:
    """Put this job on slot ``slot`` of ``count``; returns the device it got, in words."""
    if trainer_uses_gpu(cfg.trainer):
        with open_dict(cfg.trainer):
            cfg.trainer.devices = [slot]
        return f"cuda:{slot}"
    share = max(1, len(CORES) // count)
    mine = CORES[(slot * share) % len(CORES) :][:share]
    os.sched_setaffinity(0, mine)
    torch.set_num_threads(len(mine))
    return f"cpu{slot} (cores {','.join(str(c) for c in mine)})"
