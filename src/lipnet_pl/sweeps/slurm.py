"""``hydra/launcher=slurm``: hydra-submitit-launcher with each job sized from its own trainer
(the launcher class is ``hydra_plugins.lipnet_pl_launchers.SizedSlurmLauncher``).

The plugin submits every job of a sweep with the same resources (one job array). Here each job
is its own SLURM job with ``nodes = trainer.num_nodes`` and ``tasks_per_node = trainer.devices``
(``gpus_per_node`` too on GPUs), so one sweep can mix one-device and DDP jobs; Lightning takes
the ranks from ``srun`` (SLURMEnvironment). Two more differences from the plugin:

* completion is read from each job's result file and ``squeue`` (``sacct`` needs an accounting
  database, which many clusters and our test cluster do not have; the plugin would wait forever
  for a job killed without a result): such a job becomes a ``failed`` row;
* ``SLURM_*`` variables of the submitting shell (a sweep launched from inside an allocation) are
  not passed on to the jobs.

Requeue is owned by the training process (:mod:`lipnet_pl.engine.requeue`); a requeued job
reruns its sweep job, which resumes from its own folder's checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf

from lipnet_pl.errors import UserError
from lipnet_pl.hydra_runtime import trainer_uses_gpu
from lipnet_pl.sweeps.jobs import read_status, write_status

log = logging.getLogger(__name__)

ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
         "BOOT_FAIL", "DEADLINE", "PREEMPTED", "SPECIAL_EXIT"}  # fmt: skip


def job_size(trainer_cfg: DictConfig) -> dict[str, Any]:
    """SLURM resources of one job from its trainer config."""
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, int) and devices >= 1:
        per_node = devices
    elif OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        per_node = len(devices)
    else:
        raise UserError(
            f"trainer.devices={devices}: the SLURM launcher sizes each job from it, so give a "
            "number of devices per node (e.g. trainer.devices=4)"
        )
    return {
        "nodes": int(trainer_cfg.get("num_nodes", 1)),
        "tasks_per_node": per_node,
        "gpus_per_node": per_node if trainer_uses_gpu(trainer_cfg) else None,
    }


MEM_GB_PER_GPU = 32  # host memory a GPU rank gets when hydra.launcher.mem_gb is null


def default_resources(job_cfg: DictConfig, params: Any, size: dict[str, Any]) -> dict[str, Any]:
    """``cpus_per_task`` and ``mem_gb`` when the launcher leaves them null: one CPU per loader
    worker plus the training process (SLURM's default is 1 CPU for every worker), and
    :data:`MEM_GB_PER_GPU` per GPU of the node (CPU jobs keep SLURM's default memory)."""
    extra: dict[str, Any] = {}
    if params.get("cpus_per_task") is None:
        extra["cpus_per_task"] = int(job_cfg.data.get("num_workers", 0) or 0) + 1
    if params.get("mem_gb") is None and size.get("gpus_per_node"):
        extra["mem_gb"] = MEM_GB_PER_GPU * int(size["gpus_per_node"])
    return extra


@contextmanager
def _without_inherited_slurm_env() -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}
    for key in saved:
        if key != "SLURM_CONF":
            del os.environ[key]
    try:
        yield
    finally:
        os.environ.update(saved)


UNKNOWN = "UNKNOWN"  # squeue failed (a busy controller): not a reason to call the job ended


def slurm_state(job_id: str) -> str | None:
    """The job's state from ``squeue``; None once SLURM has forgotten it, :data:`UNKNOWN` when
    ``squeue`` itself failed (timed out, controller busy or restarting)."""
    try:
        out = subprocess.run(
            ["squeue", "-h", "--states=all", "-o", "%T", "-j", job_id],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return UNKNOWN
    if out.returncode == 0:
        return out.stdout.strip().split("\n")[0] or None
    return None if "invalid job id" in out.stderr.lower() else UNKNOWN


POLL_S = 2.0
# how long a job that ended COMPLETED (or that SLURM forgot) may take to show its result file:
# on a network filesystem another node's new file can stay invisible for a while
RESULT_GRACE_S = 180.0


def _executor(launcher, size: dict[str, Any]):
    """A submitit executor with the launcher's parameters and this job's size."""
    import submitit  # the plugin imports it lazily too

    init_keys = {"submitit_folder", "max_num_timeout"}
    executor = submitit.AutoExecutor(
        folder=launcher.params["submitit_folder"],
        cluster="slurm",
        slurm_max_num_timeout=launcher.params.get("max_num_timeout", 0),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k if k in base else f"slurm_{k}": v for k, v in launcher.params.items()}
    params = {k: v for k, v in params.items() if k.removeprefix("slurm_") not in init_keys}
    executor.update_parameters(**{**params, **size})
    return executor


def launch(
    launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """``SizedSlurmLauncher.launch``: submit every job with its own size, then wait for all."""
    assert launcher.config is not None and launcher.hydra_context is not None
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    submitted = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        job_cfg = launcher.hydra_context.config_loader.load_sweep_config(
            launcher.config, list(overrides)
        )
        size = job_size(job_cfg.trainer)
        size.update(default_resources(job_cfg, launcher.params, size))
        job_dir = sweep_dir / str(job_cfg.hydra.sweep.subdir)
        args = (list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}")
        with _without_inherited_slurm_env():
            job = _executor(launcher, size).submit(launcher, *args, Singleton.get_state())
        log.info("#%d SLURM job %s %s: %s", idx, job.job_id, size, job_dir.name)
        submitted.append((job, job_dir, list(overrides)))
    return [_wait(*entry) for entry in submitted]


def _wait(job, job_dir: Path, overrides: list[str]) -> JobReturn:
    """Rank 0's JobReturn once it exists; a job that ended without one is a failed row (unless
    it recorded itself finished: then its run summary is the result)."""
    from submitit.core.utils import pickle_load

    ended_since: float | None = None
    while True:
        if job.paths.result_pickle.exists():
            outcome, value = pickle_load(job.paths.result_pickle)
            if outcome == "success":
                return value
            return _failed(job_dir, overrides, str(value).strip().split("\n")[-1])
        state = slurm_state(job.job_id)
        if state is None or state in ENDED:
            ended_since = ended_since or time.monotonic()
            # FAILED, CANCELLED...: 3 polls (not a requeue in passing); COMPLETED or forgotten:
            # the result file may still be on its way
            grace = RESULT_GRACE_S if state in (None, "COMPLETED") else 2.5 * POLL_S
            if time.monotonic() - ended_since >= grace:
                return _ended_without_result(job, job_dir, overrides, state)
        elif state != UNKNOWN:
            ended_since = None
        time.sleep(POLL_S)


def _ended_without_result(job, job_dir: Path, overrides: list[str], state) -> JobReturn:
    summary = job_dir / "run_summary.json"
    if read_status(job_dir).get("status") == "finished" and summary.is_file():
        ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
        ret.return_value = json.loads(summary.read_text())
        return ret
    reason = f"SLURM job {job.job_id} ended {state or ''} without a result"
    return _failed(job_dir, overrides, f"{reason} (see {job.paths.stderr})")


def _failed(job_dir: Path, overrides: list[str], reason: str) -> JobReturn:
    """A failed row; a status the job wrote itself (its own failure, or "finished") is kept."""
    if read_status(job_dir).get("status") not in ("failed", "finished"):
        write_status(job_dir, status="failed", reason=reason, overrides=overrides)
    ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED)
    ret.return_value = {}
    return ret
