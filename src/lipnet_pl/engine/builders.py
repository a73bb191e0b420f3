"""The training engine's builders: the datamodule, the LightningModule and the Trainer from a
composed config. ``train(cfg)`` (:mod:`lipnet_pl.training.train`) and ``evaluate(cfg)``
(:mod:`lipnet_pl.evaluation.evaluate`) both build with these, so they agree on data checks,
atomic checkpoint writes, precision and cluster plugins."""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig

from lipnet_pl.config import config_errors, plain
from lipnet_pl.data.layout import find_layout, missing_split_message
from lipnet_pl.engine.checkpoint_io import AtomicCheckpointIO
from lipnet_pl.engine.lightning_module import SegmentationModule
from lipnet_pl.engine.optim import check_optimizer
from lipnet_pl.engine.requeue import cluster_plugins
from lipnet_pl.errors import UserError
from lipnet_pl.hydra_runtime import trainer_uses_gpu
from lipnet_pl.precision import trainer_precision

DATA_HINT = (
    "Get LIP as described in data/README.md (then pass data.root=/path/to/LIP), or try the "
    "pipeline without it: `make demo` (synthetic data, CPU, a few minutes) or "
    "`python -m lipnet_pl.train experiment=demo`."
)


def build_datamodule(cfg: DictConfig, splits=("train", "val"), **overrides: Any):
    """``cfg.data`` (``_target_``) with ``overrides``; the ``splits`` it needs are checked
    before any Trainer (or GPU) starts."""
    data_cfg = plain(cfg.data)
    data_cfg.update(overrides)
    with config_errors("data"):
        dm = hydra.utils.instantiate(data_cfg, _convert_="all")
    try:
        dm.prepare_data()
        layout = find_layout(dm.root, use_id_files=getattr(dm, "use_id_files", True))
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise UserError(f"{err} {DATA_HINT}") from None
    for split in splits:
        if split not in layout or not layout[split].ids:
            raise UserError(missing_split_message(dm.root, "data.root", split))
    return dm


def build_module(cfg: DictConfig, dm):
    with config_errors("module.optimizer"):
        check_optimizer(plain(cfg.module.get("optimizer")) or {})
    with config_errors("model.net"):
        return SegmentationModule(
            net=plain(cfg.model.net),
            classes=dm.classes.to_dict(),
            input_size=list(dm.crop_size),
            normalize={"mean": list(dm.mean), "std": list(dm.std)},
            **plain(cfg.module),
        )


def instantiate_group(group: DictConfig | None, key: str) -> list[Any]:
    """Instantiate every ``_target_`` entry of a callbacks/logger group."""
    if not group:
        return []
    with config_errors(key):
        return [
            hydra.utils.instantiate(v, _convert_="all")
            for v in group.values()
            if isinstance(v, DictConfig) and "_target_" in v
        ]


def check_accelerator(trainer_cfg) -> None:
    """``trainer=gpu`` on a machine without a usable CUDA device is one line, not a CUDA
    traceback from deep inside Lightning."""
    import torch

    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if trainer_uses_gpu(trainer_cfg) and not torch.cuda.is_available():
        raise UserError(
            f"trainer.accelerator={accelerator} (trainer=gpu/ddp) needs a CUDA GPU, and none is "
            "usable here (torch.cuda.is_available() is False: no GPU, no driver, or "
            "CUDA_VISIBLE_DEVICES hides it): use trainer=cpu"
        )


def build_trainer(cfg: DictConfig, callbacks: list[Any], loggers: list[Any]):
    """``cfg.trainer`` with atomic checkpoint writes; our one-line model summary replaces
    Lightning's table (which prints ``Total FLOPs: 0``)."""
    check_accelerator(cfg.trainer)
    trainer_cfg = plain(cfg.trainer)
    trainer_cfg.setdefault("enable_model_summary", False)
    trainer_cfg["precision"] = trainer_precision(
        trainer_cfg.get("precision"), trainer_cfg.get("accelerator")
    )
    plugins = [AtomicCheckpointIO(), *cluster_plugins(), *(trainer_cfg.pop("plugins", None) or [])]
    with config_errors("trainer"):
        return hydra.utils.instantiate(
            trainer_cfg,
            callbacks=callbacks,
            logger=loggers if loggers else False,
            plugins=plugins,
            _convert_="all",
        )
