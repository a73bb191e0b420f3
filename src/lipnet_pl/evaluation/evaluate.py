"""``evaluate(cfg)``: the standard LIP protocol on a split, for any saved model.

One confusion matrix over the split at the original label size, mIoU over all classes, optional
flip / multi-scale TTA (``tta=flip``, ``tta=multiscale``). The model comes from the one loader
(``.ckpt``, ``.onnx``, ``save_pretrained`` folder) with its classes, input size and
normalisation, and runs through the same inference network and preprocessing as ``predict``.
Writes ``metrics.json``, ``per_class_iou.md``/``.png``, ``confusion_matrix.png``, validation
panels under ``figures/`` and, with ``save_predictions=true``, label PNGs under
``predictions/``. Runs on one device or under DDP (``trainer=ddp_sim`` on CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lipnet_pl.config import config_errors, plain
from lipnet_pl.core.backends import select_backend
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.metrics import percent
from lipnet_pl.core.predictor import inference_network
from lipnet_pl.core.tta import tta_config
from lipnet_pl.engine.builders import build_datamodule, build_trainer, check_accelerator
from lipnet_pl.engine.callbacks import ProgressBar, ValidationPanels
from lipnet_pl.engine.lightning_module import SegmentationModule
from lipnet_pl.errors import UserError
from lipnet_pl.evaluation.writer import PredictionWriter
from lipnet_pl.hydra_runtime import local_rank, trainer_uses_gpu
from lipnet_pl.outputs import writable_dir

log = logging.getLogger(__name__)


def check_classes(cfg: DictConfig, spec) -> None:
    """The data config must describe the checkpoint's classes (or leave them to it)."""
    data_classes = plain(cfg.data.get("classes"))
    n = cfg.data.get("num_classes")
    if n is not None and int(n) != spec.num_classes:
        raise UserError(
            f"ckpt_path={cfg.ckpt_path} predicts {spec.num_classes} classes but data.num_classes="
            f"{n}: evaluate on data with the model's classes (data.num_classes="
            f"{spec.num_classes}, data.classes=...)"
        )
    if data_classes and list(data_classes.get("names") or spec.classes.names) != list(
        spec.classes.names
    ):
        raise UserError(
            f"data.classes.names differ from the classes of ckpt_path={cfg.ckpt_path} "
            f"({list(spec.classes.names)}): drop data.classes to use the model's"
        )


def eval_device(cfg: DictConfig) -> str:
    """The device of ``cfg.trainer`` (``gpu``/``cuda``, or ``auto`` with CUDA -> cuda), so an
    ONNX session runs where Lightning puts the batches."""
    if not trainer_uses_gpu(cfg.trainer):
        return "cpu"
    # this process's GPU: its local rank under DDP, mapped through an explicit device list
    # (trainer.devices=[2] is GPU 2)
    local = local_rank()
    devices = cfg.trainer.get("devices")
    if OmegaConf.is_list(devices) or isinstance(devices, list | tuple):
        return f"cuda:{int(devices[local % len(devices)])}"
    return f"cuda:{local}"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Validate ``cfg.ckpt_path`` on ``cfg.data``'s val split; return the metrics (rank 0)."""
    check_accelerator(cfg.trainer)  # before the model goes to a device
    from lipnet_pl.evaluation.reports import write_reports  # lazy: matplotlib

    with config_errors("tta"):
        tta = tta_config(plain(cfg.tta))
    key = "output" if cfg.get("output") else "paths.output_dir"
    out_dir = writable_dir(cfg.get("output") or cfg.paths.output_dir, key)
    device = eval_device(cfg)
    loaded = select_backend(load_model(cfg.ckpt_path, device), str(cfg.backend), device, out_dir)
    spec = loaded.spec
    check_classes(cfg, spec)
    net = inference_network(loaded, fast=bool(cfg.get("fast", True)))
    module = SegmentationModule.from_spec(spec, network=net, tta=tta, channels_last=False)
    dm = build_datamodule(
        cfg,
        splits=("val",),
        classes=spec.classes.to_dict(),
        crop_size=list(spec.input_size),
        num_classes=spec.num_classes,
        mean=list(spec.mean),
        std=list(spec.std),
    )
    callbacks = [ProgressBar(), ValidationPanels(int(cfg.get("log_images", 4)))]
    if cfg.get("save_predictions"):
        callbacks.append(PredictionWriter(out_dir / "predictions"))
    trainer = build_trainer(cfg, callbacks, loggers=[])
    trainer.validate(module, datamodule=dm, verbose=False)
    if not trainer.is_global_zero:
        return {}
    results = module.last_val_results
    extra = {"ckpt_path": str(cfg.ckpt_path), "format": loaded.format, "tta": tta, **spec.to_dict()}
    files = write_reports(results, list(spec.classes.names), out_dir, extra)
    log.info("metrics: %s", files["metrics"])
    return {**results, "files": {k: str(v) for k, v in files.items()}}


def report(results: dict[str, Any], out_dir: str | Path) -> None:
    """The command's last line."""
    if results:
        lr = results.get("lr_miou")
        lr_text = "" if lr is None else f" | left/right mIoU {percent(lr)}"
        print(
            f"val mIoU {percent(results['miou'])} | pixel acc {percent(results['pixel_acc'])} | "
            f"mean acc {percent(results['mean_acc'])}{lr_text} | paper per-image mIoU (not "
            f"comparable) {percent(results['paper_miou_per_image'])} -> {out_dir}"
        )
