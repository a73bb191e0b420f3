"""What the running job is, answered once: a Hydra multirun or a single run, launched by SLURM or
not, rank 0 or not, on a GPU or not; and the ``${lipnet.*}`` resolvers the configs use.

Every layer asks these questions (the command shell, training's config checks, the sweep jobs,
evaluation's device choice); each has one definition here, in the foundation, so two layers can
never answer them differently.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from lipnet_pl.runtime import visible_devices

SEED_KEYS = ("seed",)
"""Overrides that make a repeat of a configuration, not another one (sweep groups, wandb)."""


def hydra_config() -> Any | None:
    """Hydra's runtime config of the running job (None outside ``@hydra.main``)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def multirun_config() -> Any | None:
    """Hydra's runtime config when this is a multirun job (``-m``), else None."""
    from hydra.types import RunMode

    hydra_cfg = hydra_config()
    return hydra_cfg if hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN else None


def is_multirun() -> bool:
    return multirun_config() is not None


def job_overrides() -> list[str]:
    """The running job's command-line overrides (any run mode; [] outside Hydra)."""
    hydra_cfg = hydra_config()
    return [] if hydra_cfg is None else list(hydra_cfg.overrides.task)


def multirun_overrides() -> list[str] | None:
    """The job's overrides in a multirun; None in a single run."""
    hydra_cfg = multirun_config()
    return None if hydra_cfg is None else list(hydra_cfg.overrides.task)


def launcher_target() -> str:
    """The ``_target_`` of the running job's Hydra launcher, lower case ('' outside Hydra)."""
    hydra_cfg = hydra_config()
    return "" if hydra_cfg is None else str(hydra_cfg.launcher.get("_target_", "")).lower()


def launched_by_slurm() -> bool:
    """A multirun job started by a SLURM launcher: its tasks are the DDP ranks already."""
    return "slurm" in launcher_target()


def global_rank() -> int:
    """This process's rank among the job's processes. ``RANK`` first (torchrun and Lightning set
    the global rank there; under torchrun inside SLURM, ``SLURM_PROCID`` is the node's task), then
    ``SLURM_PROCID`` (srun's tasks are the ranks), else 0 (a single process)."""
    return int(os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or 0)


def local_rank() -> int:
    """This process's rank on its node: Lightning's/torchrun's ``LOCAL_RANK``, else srun's
    ``SLURM_LOCALID``, else 0."""
    return int(os.environ.get("LOCAL_RANK") or os.environ.get("SLURM_LOCALID") or 0)


def is_rank_zero() -> bool:
    return global_rank() == 0


def trainer_uses_gpu(trainer_cfg: Any) -> bool:
    """Whether a ``trainer`` config runs on CUDA: ``gpu``/``cuda``, or ``auto`` with CUDA present."""
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


# ---- the ${lipnet.*} resolvers -------------------------------------------------------------


def _swept_keys(sweep_dir: str) -> set[str] | None:
    """Keys the sweep varies, from the ``multirun.yaml`` Hydra writes before launching jobs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        master = OmegaConf.load(Path(sweep_dir) / "multirun.yaml")
        parsed = OverridesParser.create().parse_overrides(list(master.hydra.overrides.task))
    except Exception:  # no file (yet), or a file from elsewhere: fall back to every override
        return None
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


def job_dirname(sweep_dir: str, overrides: Sequence[str], limit: int = 120) -> str:
    """A sweep job's folder: its values of the swept keys (``model.dilations=paper,seed=0``),
    so a relaunched sweep finds it again. Slashes become ``.``; a long name keeps a hash."""
    swept = _swept_keys(sweep_dir)
    kept = sorted(o for o in overrides if swept is None or o.split("=", 1)[0].lstrip("+~") in swept)
    name = ",".join(kept).replace("/", ".")
    name = re.sub(r"[^A-Za-z0-9=,._+\-\[\]]", "_", name) or "job"
    if len(name) > limit:
        name = name[: limit - 9] + "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return name


def sweep_group(sweep_name: str) -> str | None:
    """The wandb group of a multirun job (its sweep's name); None for a single run."""
    return None if multirun_overrides() is None else str(sweep_name)


def sweep_job_type() -> str | None:
    """The wandb job_type of a multirun job: its overrides without the seed (its configuration)."""
    overrides = multirun_overrides()
    if overrides is None:
        return None
    skip = (*SEED_KEYS, "sweep_name")
    kept = sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in skip)
    return ",".join(kept)[:128] or "all"


def num_devices() -> int:
    """Visible GPUs, else 1: the default number of parallel jobs of ``hydra/launcher=local``."""
    return visible_devices()


def register_resolvers() -> None:
    """``${lipnet.job_dir:...}``, ``${lipnet.num_devices:}``, ``${lipnet.sweep_group:...}``,
    ``${lipnet.job_type:}`` (idempotent)."""
    OmegaConf.register_new_resolver("lipnet.job_dir", job_dirname, replace=True)
    OmegaConf.register_new_resolver("lipnet.num_devices", num_devices, replace=True)
    OmegaConf.register_new_resolver("lipnet.sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("lipnet.job_type", sweep_job_type, replace=True)
