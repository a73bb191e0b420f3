"""The project's Hydra configs: where they live, composing them, turning them into primitives.

The configs are the repository's top-level ``conf/`` folder, shipped inside the wheel as the
package ``lipnet_pl.conf`` (see ``setup.py``), so editable and normal installs find them the same
way, from any working directory.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from lipnet_pl.errors import UserError
from lipnet_pl.runtime import visible_devices

SEED_KEYS = ("seed",)
"""Overrides that make a repeat of a configuration, not another one (sweep groups, wandb)."""


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


def _multirun_overrides() -> list[str] | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    return list(HydraConfig.get().overrides.task)


def sweep_group(sweep_name: str) -> str | None:
    """The wandb group of a multirun job (its sweep's name); None for a single run."""
    return None if _multirun_overrides() is None else str(sweep_name)


def sweep_job_type() -> str | None:
    """The wandb job_type of a multirun job: its overrides without the seed (its configuration)."""
    overrides = _multirun_overrides()
    if overrides is None:
        return None
    skip = (*SEED_KEYS, "sweep_name")
    kept = sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in skip)
    return ",".join(kept)[:128] or "all"


def num_devices() -> int:
    """Visible GPUs, else 1: the default number of parallel jobs of ``hydra/launcher=local``."""
    return visible_devices()


OmegaConf.register_new_resolver("lipnet.job_dir", job_dirname, replace=True)
OmegaConf.register_new_resolver("lipnet.num_devices", num_devices, replace=True)
OmegaConf.register_new_resolver("lipnet.sweep_group", sweep_group, replace=True)
OmegaConf.register_new_resolver("lipnet.job_type", sweep_job_type, replace=True)


@cache
def config_dir() -> str:
    """Absolute path of the ``conf`` folder of the installed package."""
    path = importlib.resources.files("lipnet_pl.conf")
    if not path.joinpath("train.yaml").is_file():
        raise RuntimeError(f"lipnet_pl's configs are missing from {path}: reinstall the package")
    return str(path)


def compose(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """Compose ``conf/<name>.yaml`` with ``overrides`` outside ``@hydra.main`` (tests, the demo,
    notebooks). ``${hydra:...}`` is not available here: pass ``paths.output_dir=...``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside a running command (e.g. the demo)
        return hydra_compose(config_name=name, overrides=list(overrides))
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return hydra_compose(config_name=name, overrides=list(overrides))


def plain(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (resolved); anything else unchanged.

    Checkpoint hyper-parameters must be primitives (``weights_only`` loading), and constructors
    should not depend on OmegaConf types.
    """
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


@contextmanager
def config_errors(key: str) -> Iterator[None]:
    """Turn a ValueError/TypeError raised while building an object from ``cfg.<key>`` into a
    :class:`UserError` that names the key (constructors validate their arguments)."""
    from hydra.errors import InstantiationException

    try:
        yield
    except UserError:
        raise
    except InstantiationException as err:
        cause = err.__cause__ if err.__cause__ is not None else err
        if isinstance(cause, UserError):
            raise cause from None
        raise UserError(_name_key(key, cause)) from err
    except (ValueError, TypeError) as err:
        raise UserError(_name_key(key, err)) from err
    except Exception as err:
        if type(err).__name__ == "MisconfigurationException":  # Lightning's config errors
            raise UserError(_name_key(key, err)) from err
        raise


def _name_key(key: str, err: BaseException) -> str:
    message = str(err)
    return message if key in message else f"{key}: {message}"
