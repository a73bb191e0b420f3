"""A sweep job that reports instead of ending the sweep, and that a relaunch can skip or resume.

``python -m lipnet_pl.train -m ...`` runs each job through :func:`sweep_job`. In a multirun the
job's stable folder (named from its overrides, ``conf/hydra/default.yaml``) gets a
``job_status.json``: ``running`` when it starts, then ``finished``, or ``failed`` with a
one-line reason (a user error, divergence, out of memory, a bug: its traceback goes to
``error.txt``). A failure is recorded and the job returns, so the other jobs still run and the
summary is written (:class:`lipnet_pl.sweeps.summary.SweepSummary` then ends the command with
exit status 4 naming the failed jobs). A job still ``running`` when the sweep ends was killed.
Relaunching the identical sweep (same ``sweep_name``) skips finished jobs; the others resume
from their own ``last.ckpt`` (``resume=auto``). Only rank 0 of a multi-process job writes. A
finished job adds its network's CPU latency to its summary (:mod:`lipnet_pl.sweeps.latency`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lipnet_pl.cli import one_line
from lipnet_pl.errors import NonFiniteLossError, UserError
from lipnet_pl.hydra_runtime import is_rank_zero, multirun_config
from lipnet_pl.sweeps.devices import device_slot, pin
from lipnet_pl.sweeps.latency import add_latency

log = logging.getLogger(__name__)

STATUS_FILE = "job_status.json"


def read_status(job_dir: Path) -> dict[str, Any]:
    """The job's ``job_status.json`` ({} when there is none or it is unreadable)."""
    try:
        return json.loads((Path(job_dir) / STATUS_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_status(job_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the job's status file (atomically: a reader never sees half)."""
    path = Path(job_dir) / STATUS_FILE
    status = {**read_status(job_dir), **fields}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(status, indent=2))
    os.replace(tmp, path)
    return status


def failure_reason(err: BaseException) -> str:
    """One line saying why a job failed."""
    if isinstance(err, UserError):
        reason = one_line(err)
    elif isinstance(err, NonFiniteLossError):
        reason = "diverged: " + one_line(err)
    elif isinstance(err, torch.OutOfMemoryError):
        reason = "out of memory: " + one_line(str(err).split("\n")[0])
    else:
        reason = f"{type(err).__name__}: {one_line(err)} (traceback in error.txt)"
    return reason if len(reason) <= 500 else reason[:497] + "..."


@contextmanager
def _device(cfg: DictConfig, hydra_cfg: Any, job_dir: Path) -> Iterator[str | None]:
    """A free device slot under the parallel one-node launcher (joblib); None otherwise."""
    launcher = hydra_cfg.launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        yield None
        return
    count = int(launcher.n_jobs)
    with device_slot(job_dir.parent / ".devices", count) as slot:
        yield pin(cfg, slot, count)


def sweep_job(task: Callable[[DictConfig], dict[str, Any]]) -> Callable[[DictConfig], Any]:
    """``task`` as a sweep job in a multirun (see the module doc); unchanged in a single run."""

    @functools.wraps(task)
    def job(cfg: DictConfig) -> dict[str, Any]:
        hydra_cfg = multirun_config()
        if hydra_cfg is None:
            return task(cfg)
        return run_sweep_job(task, cfg, hydra_cfg)

    return job


def run_sweep_job(task: Callable, cfg: DictConfig, hydra_cfg: Any) -> dict[str, Any]:
    """Run one multirun job: skip it if an earlier launch finished it, else record its status
    around ``task`` and turn an exception into a ``failed`` status (the job returns {})."""
    job_dir = Path(cfg.paths.output_dir)
    previous = read_status(job_dir)
    if previous.get("status") == "finished" and Path(cfg.summary_file).is_file():
        log.info("%s finished in an earlier launch of this sweep: skipped", job_dir.name)
        return json.loads(Path(cfg.summary_file).read_text())
    record = write_status if is_rank_zero() else (lambda *a, **k: None)
    slot = _device(cfg, hydra_cfg, job_dir) if is_rank_zero() else nullcontext()
    with slot as device:
        record(
            job_dir,
            status="running",
            reason=None,
            num=int(hydra_cfg.job.num),
            overrides=list(hydra_cfg.overrides.task),
            device=device,
            slurm_job_id=os.environ.get("SLURM_JOB_ID"),
            attempt=int(previous.get("attempt", 0)) + 1,
            started=time.time(),
            ended=None,
        )
        try:
            summary = task(cfg)
        except KeyboardInterrupt:
            record(job_dir, status="failed", reason="interrupted", ended=time.time())
            raise
        except Exception as err:
            reason = failure_reason(err)
            if not isinstance(err, UserError | NonFiniteLossError) and is_rank_zero():
                (job_dir / "error.txt").write_text(traceback.format_exc())
            record(job_dir, status="failed", reason=reason, ended=time.time())
            log.error("job %s failed: %s", job_dir.name, reason)
            return {}
        if is_rank_zero():  # on its device slot's cores, as it trained
            summary = add_latency(cfg, summary)
        record(job_dir, status="finished", ended=time.time())
        return summary
