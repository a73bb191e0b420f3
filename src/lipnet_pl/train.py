"""Training entry point: ``python -m lipnet_pl.train [experiment=...] [overrides]``.

A thin ``@hydra.main`` around :func:`train`, which takes a composed config (so tests, the demo
and notebooks call it directly). Every output lands under ``paths.output_dir`` (the Hydra run
dir): checkpoints/, logs/, wandb/, figures/ and ``run_summary.json`` (read by the multirun
summary of :mod:`lipnet_pl.sweep`).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from lipnet_pl.utils import CONFIG_DIR

log = logging.getLogger(__name__)


DATA_HINT = (
    "Get LIP as described in data/README.md (then pass data.root=/path/to/LIP), or try the "
    "pipeline without it: `make demo` (synthetic data, CPU, a few minutes) or "
    "`python -m lipnet_pl.train experiment=demo`."
)


class UserFacingError(Exception):
    """An error whose message is the whole story (printed without a traceback, exit code 2)."""


def to_primitive(value: Any) -> Any:
    """OmegaConf containers -> plain dicts/lists (checkpoints must hold primitives only)."""
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def is_distributed(trainer_cfg: DictConfig) -> bool:
    """True when the trainer config asks for more than one process."""
    strategy = str(trainer_cfg.get("strategy", "auto"))
    devices = trainer_cfg.get("devices", 1)
    many_devices = (isinstance(devices, int) and (devices > 1 or devices == -1)) or (
        not isinstance(devices, int) and str(devices) not in ("1", "auto", "[0]")
    )
    return "ddp" in strategy or many_devices or int(trainer_cfg.get("num_nodes", 1)) > 1


def check_config(cfg: DictConfig) -> None:
    """Refuse combinations that hang or cannot work, before anything heavy starts."""
    if is_multirun() and is_distributed(cfg.trainer):
        raise UserFacingError(
            "Hydra multirun with a multi-process trainer "
            f"(trainer.strategy={cfg.trainer.get('strategy')}, trainer.devices={cfg.trainer.get('devices')}, "
            f"trainer.num_nodes={cfg.trainer.get('num_nodes')}) hangs: Lightning cannot relaunch "
            "DDP workers from a sweep. Run sweeps one device per job (trainer=gpu or trainer=cpu), "
            "or launch each DDP run separately without -m."
        )


def build_datamodule(cfg: DictConfig, **overrides: Any):
    """Instantiate ``cfg.data`` (``_target_``) with ``overrides`` and check the data is there.

    Missing or malformed data raises :class:`UserFacingError` pointing to data/README.md and the
    demo, before any Trainer (or GPU) is touched.
    """
    from lipnet_pl.data.layout import find_layout

    data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
    data_cfg.update(overrides)
    dm = hydra.utils.instantiate(data_cfg, _convert_="all")
    try:
        dm.prepare_data()
        find_layout(dm.root, use_id_files=getattr(dm, "use_id_files", True))
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise UserFacingError(f"{err}\n\n{DATA_HINT}") from None
    return dm


def _instantiate_dict(group: DictConfig | None) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not group:
        return []
    return [
        hydra.utils.instantiate(v, _convert_="all")
        for v in group.values()
        if isinstance(v, DictConfig) and "_target_" in v
    ]


def build_module(cfg: DictConfig, dm):
    from lipnet_pl.module import SegmentationModule, class_info_to_dict

    module_cfg = to_primitive(cfg.module)
    return SegmentationModule(
        net=to_primitive(cfg.model.net),
        classes=class_info_to_dict(dm.classes),
        input_size=list(dm.crop_size),
        normalize={"mean": list(dm.mean), "std": list(dm.std)},
        **module_cfg,
    )


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any]):
    from lipnet_pl.callbacks import AtomicCheckpointIO

    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    return hydra.utils.instantiate(
        trainer_cfg,
        callbacks=callbacks,
        logger=loggers if loggers else False,
        plugins=[AtomicCheckpointIO()],
        _convert_="all",
    )


def _finish_wandb(loggers: list[Any]) -> None:
    if any(type(lg).__name__ == "WandbLogger" for lg in loggers):
        import wandb

        wandb.finish()  # a multirun's next job must start a fresh wandb run


def write_run_summary(cfg: DictConfig, trainer, module, wall_s: float) -> dict[str, Any]:
    """Per-job facts for the sweep table: dilations, size, cost, best mIoU, speed."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from lipnet_pl.callbacks import StepCheckpoint, ThroughputMonitor, find_callback
    from lipnet_pl.models.summary import count_gflops, count_parameters

    best_cb = next(
        (
            cb
            for cb in trainer.callbacks
            if isinstance(cb, ModelCheckpoint) and not isinstance(cb, StepCheckpoint)
        ),
        None,
    )
    best = None
    if best_cb is not None and best_cb.best_model_score is not None:
        best = float(best_cb.best_model_score)
    elif module.last_val_results is not None:
        best = module.last_val_results["miou"]
    throughput = find_callback(trainer, ThroughputMonitor)
    h, w = module.hparams["input_size"]
    net = module.net
    summary = {
        "model": module.hparams["net"].get("name"),
        "dilations": module.hparams["net"].get("dilations"),
        "params": count_parameters(net),
        "gflops": round(count_gflops(net, height=h, width=w), 3),
        "input_size": [h, w],
        "best_val_miou": best,
        "last_val": {k: v for k, v in (module.last_val_results or {}).items() if k != "confmat"},
        "train_images_per_s": None if throughput is None else throughput.images_per_second,
        "global_step": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "best_ckpt": best_cb.best_model_path if best_cb is not None else None,
        "last_ckpt": best_cb.last_model_path if best_cb is not None else None,
        "output_dir": str(cfg.paths.output_dir),
        "wall_s": round(wall_s, 2),
        "overrides": _job_overrides(),
    }
    path = Path(cfg.summary_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2))
    return summary


def _job_overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(HydraConfig.get().overrides.task)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg`` and return the run summary (also written to ``cfg.summary_file``)."""
    import lightning.pytorch as pl

    check_config(cfg)
    start = time.perf_counter()
    pl.seed_everything(cfg.get("seed"), workers=True)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    callbacks = _instantiate_dict(cfg.get("callbacks"))
    loggers = _instantiate_dict(cfg.get("logger"))
    if not loggers:  # logger=none: nothing to monitor the learning rate into
        from lightning.pytorch.callbacks import LearningRateMonitor

        callbacks = [cb for cb in callbacks if not isinstance(cb, LearningRateMonitor)]
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    trainer = build_trainer(cfg, callbacks, loggers)
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.get("ckpt_path"))
        summary = {}
        if trainer.is_global_zero:
            summary = write_run_summary(cfg, trainer, module, time.perf_counter() - start)
            log.info("run summary: %s", cfg.summary_file)
    finally:
        _finish_wandb(loggers)
    return summary


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lipnet_pl.module import NonFiniteLossError

    try:
        summary = train(cfg)
    except UserFacingError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(3)
    return summary.get("best_val_miou")  # for Hydra sweepers that optimise a value


if __name__ == "__main__":
    main()
