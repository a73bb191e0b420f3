"""LightningModule wrapping any network of :func:`lipnet_pl.models.build_model`.

It owns the loss, the optimiser and its per-iteration schedule, the standard LIP validation
metrics (one confusion matrix over the split at original label size) and the validation panels.
Its hyper-parameters are primitives only and follow the checkpoint contract of
:mod:`lipnet_pl.checkpoint` (``net``, ``classes``, ``input_size``, ``normalize``; parameters under
``net.``), so checkpoints load with ``torch.load(weights_only=True)`` and without Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import Tensor
from torch.utils.data import DistributedSampler

from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.losses import SegmentationLoss
from lipnet_pl.metrics import LIPSegmentationMetrics
from lipnet_pl.tta import predict_logits
from lipnet_pl.viz import denormalize, panel

DEFAULT_OPTIMIZER = {
    "name": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "nesterov": False,
}
DEFAULT_SCHEDULER = {
    "name": "poly",
    "power": 0.9,
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
    "min_lr_ratio": 0.0,
}


class NonFiniteLossError(RuntimeError):
    """Raised when the loss or the gradients become NaN/Inf; no checkpoint is written after it."""


def class_info_to_dict(info: ClassInfo) -> dict[str, Any]:
    """Primitive (checkpoint-safe) form of a :class:`ClassInfo`."""
    return {
        "names": list(info.names),
        "palette": [list(c) for c in info.palette],
        "flip_pairs": [list(p) for p in info.flip_pairs],
        "ignore_index": int(info.ignore_index),
    }


def padded_sample_mask(sampler: Any, first_local_index: int, count: int) -> list[bool]:
    """Which of ``count`` consecutive local samples are real (True) vs. DistributedSampler padding.

    ``DistributedSampler`` (shuffled or not) pads its index list to a multiple of the world size
    by repeating its first indices at the END, then gives rank ``r`` positions ``r, r+W, r+2W...``.
    So the ``k``-th sample of rank ``r`` is a duplicate exactly when ``r + k * W >= len(dataset)``.
    Samplers that do not pad (single process, ``UnrepeatedDistributedSampler``, ``drop_last``)
    never reach such positions, so every sample is kept.
    """
    if not isinstance(sampler, DistributedSampler):
        return [True] * count
    n, world, rank = len(sampler.dataset), sampler.num_replicas, sampler.rank
    return [rank + (first_local_index + i) * world < n for i in range(count)]


class SegmentationModule(pl.LightningModule):
    """Semantic segmentation training/validation around ``build_model(**net)``."""

    def __init__(
        self,
        net: dict[str, Any],
        classes: dict[str, Any] | None = None,
        input_size: Sequence[int] = (473, 473),
        normalize: dict[str, Any] | None = None,
        loss: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        compile: bool | str = False,
        sync_batchnorm: bool = True,
        tta: dict[str, Any] | None = None,
        log_images: int = 4,
    ) -> None:
        super().__init__()
        from lipnet_pl.models import build_model

        if not isinstance(net, dict) or "name" not in net:
            raise ValueError(
                f"module: net must be a dict with at least 'name' (model.net), got {net!r}"
            )
        info = ClassInfo.from_config(classes)
        net = dict(net)
        net.setdefault("num_classes", info.num_classes)
        if int(net["num_classes"]) != info.num_classes:
            raise ValueError(
                f"model.net.num_classes={net['num_classes']} but the data's class list has "
                f"{info.num_classes} classes: set model.net.num_classes=${{data.num_classes}}"
            )
        if len(input_size) != 2:
            raise ValueError(f"input_size must be [H, W], got {list(input_size)}")
        normalize = dict(normalize or {})
        normalize = {
            "mean": [float(v) for v in normalize.get("mean", IMAGENET_DEFAULT_MEAN)],
            "std": [float(v) for v in normalize.get("std", IMAGENET_DEFAULT_STD)],
        }
        tta = {"flip": False, "scales": [1.0], **dict(tta or {})}
        tta["scales"] = [float(s) for s in tta["scales"]]
        self.save_hyperparameters(
            {
                "net": net,
                "classes": class_info_to_dict(info),
                "input_size": [int(input_size[0]), int(input_size[1])],
                "normalize": normalize,
                "loss": dict(loss or {}),
                "optimizer": {**DEFAULT_OPTIMIZER, **dict(optimizer or {})},
                "scheduler": {**DEFAULT_SCHEDULER, **dict(scheduler or {})},
                "compile": compile if isinstance(compile, str) else bool(compile),
                "sync_batchnorm": bool(sync_batchnorm),
                "tta": tta,
                "log_images": int(log_images),
            }
        )
        self.net = build_model(**net)
        self.class_info = info
        self.loss_fn = SegmentationLoss(
            info.num_classes, ignore_index=info.ignore_index, **self.hparams["loss"]
        )
        self.val_metrics = LIPSegmentationMetrics(info.num_classes, info.ignore_index)
        self.last_val_results: dict[str, Any] | None = None
        self._val_seen = 0
        self._panel_batch: tuple[Tensor, list[Tensor], Tensor] | None = None
        object.__setattr__(self, "_compiled", None)  # kept out of the module tree and state_dict

    # ----------------------------------------------------------------------------- forward
    def setup(self, stage: str) -> None:
        on_gpu = (
            self.trainer.strategy.root_device.type == "cuda"
        )  # torch's SyncBatchNorm is GPU-only
        if self.hparams["sync_batchnorm"] and self.trainer.world_size > 1 and on_gpu:
            from timm.layers import convert_sync_batchnorm

            # timm's converter keeps BatchNormAct2d's activation (torch's does not).
            self.net = convert_sync_batchnorm(self.net)
        if self.hparams["compile"] and self._compiled is None:
            # compile a handle, never assign it to self.net: no `_orig_mod.` in checkpoints
            backend = (
                "inductor" if self.hparams["compile"] is True else str(self.hparams["compile"])
            )
            object.__setattr__(self, "_compiled", torch.compile(self.net, backend=backend))

    def forward(self, images: Tensor) -> Tensor:
        net = self.net if self._compiled is None else self._compiled
        return net(images)

    def predict_logits(self, images: Tensor) -> Tensor:
        """Logits at the images' size, with the configured flip / multi-scale TTA."""
        tta = self.hparams["tta"]
        if not tta["flip"] and list(tta["scales"]) == [1.0]:
            return self(images)
        perm = self.class_info.flip_permutation if tta["flip"] else None
        return predict_logits(self, images, flip_permutation=perm, scales=tta["scales"])

    # ---------------------------------------------------------------------------- training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        images, masks = batch["image"], batch["mask"]
        logits = self(images)
        if logits.shape[-2:] != masks.shape[-2:]:
            raise ValueError(
                f"model returned logits {tuple(logits.shape)} for images {tuple(images.shape)}; "
                "models must keep the input's H x W"
            )
        loss = self.loss_fn(logits, masks)
        bad = ~torch.isfinite(loss.detach())
        if self.trainer.world_size > 1:  # every rank must stop together, or the others hang
            bad = torch.as_tensor(
                self.trainer.strategy.reduce_boolean_decision(bool(bad), all=False)
            )
        if bool(bad):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} at global step {self.global_step} "
                f"(epoch {self.current_epoch}, batch {batch_idx}): stopping before any checkpoint "
                "is written, the last good checkpoint is kept. Lower module.optimizer.lr, add "
                "warm-up (module.scheduler.warmup_steps) or check the data."
            )
        self.log(
            "train/loss",
            loss,
            prog_bar=True,
            on_step=True,
            on_epoch=True,
            batch_size=images.shape[0],
        )
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        grads = [p.grad for p in self.net.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            raise NonFiniteLossError(
                f"gradients became NaN/Inf at global step {self.global_step} (epoch "
                f"{self.current_epoch}): stopping before the weights are updated; the last good "
                "checkpoint is kept. Lower module.optimizer.lr or add gradient clipping "
                "(trainer.gradient_clip_val)."
            )

    def configure_optimizers(self) -> dict[str, Any]:
        opt = dict(self.hparams["optimizer"])
        name = str(opt.pop("name")).lower()
        lr, wd = float(opt["lr"]), float(opt["weight_decay"])
        decay, no_decay = [], []
        for param in self.net.parameters():
            if param.requires_grad:  # norms and biases (1-D) get no weight decay
                (no_decay if param.ndim <= 1 else decay).append(param)
        groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
        if name == "sgd":
            optimizer = torch.optim.SGD(
                groups,
                lr=lr,
                momentum=float(opt.get("momentum", 0.9)),
                nesterov=bool(opt.get("nesterov", False)),
            )
        elif name == "adamw":
            optimizer = torch.optim.AdamW(
                groups, lr=lr, betas=tuple(opt.get("betas", (0.9, 0.999)))
            )
        else:
            raise ValueError(f"module.optimizer.name must be 'sgd' or 'adamw', got {name!r}")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, self._lr_factor()),
                "interval": "step",
            },
        }

    def _lr_factor(self):
        """Warm-up then poly (power 0.9) or cosine decay, per optimiser step."""
        cfg = self.hparams["scheduler"]
        name = str(cfg["name"]).lower()
        if name not in ("poly", "cosine", "constant"):
            raise ValueError(
                f"module.scheduler.name must be poly, cosine or constant, got {name!r}"
            )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(cfg.get("warmup_steps") or 0) or int(
            float(cfg.get("warmup_ratio") or 0.0) * total
        )
        power, floor = float(cfg.get("power", 0.9)), float(cfg.get("min_lr_ratio", 0.0))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            if name == "poly":
                decay = (1.0 - progress) ** power
            elif name == "cosine":
                decay = 0.5 * (1.0 + math.cos(math.pi * progress))
            else:
                decay = 1.0
            return floor + (1.0 - floor) * decay

        return factor

    # -------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_seen = 0
        self._panel_batch = None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        images, masks = batch["image"], batch["mask"]
        if isinstance(masks, Tensor) and masks.ndim == 3:
            masks = list(masks)
        logits = self.predict_logits(images)
        sampler = getattr(self.trainer.val_dataloaders, "sampler", None)
        keep = padded_sample_mask(sampler, self._val_seen, len(masks))
        self._val_seen += len(masks)
        kept = [i for i, k in enumerate(keep) if k]
        if kept:
            self.val_metrics.update([logits[i] for i in kept], [masks[i] for i in kept])
        if batch_idx == 0 and self._panel_batch is None and self.hparams["log_images"] > 0:
            n = self.hparams["log_images"]
            self._panel_batch = (
                images[:n].detach().cpu(),
                [m.cpu() for m in masks[:n]],
                logits[:n].argmax(1).cpu(),
            )

    def on_validation_epoch_end(self) -> None:
        res = self.val_metrics.compute()
        self.val_metrics.reset()
        scalars = {
            "val/miou": res["miou"],
            "val/pixel_acc": res["pixel_acc"],
            "val/mean_acc": res["mean_acc"],
            "val/paper_miou_per_image": res["paper_miou_per_image"],
        }
        for name, iou in zip(self.class_info.names, res["iou"], strict=True):
            scalars[f"val/iou/{name}"] = iou
        self.log_dict({k: v.float() for k, v in scalars.items()}, sync_dist=False)
        self.last_val_results = {
            "miou": float(res["miou"]),
            "pixel_acc": float(res["pixel_acc"]),
            "mean_acc": float(res["mean_acc"]),
            "paper_miou_per_image": float(res["paper_miou_per_image"]),
            "iou": {n: float(v) for n, v in zip(self.class_info.names, res["iou"], strict=True)},
            "confmat": res["confmat"].cpu().tolist(),
            "num_images": int(res["num_images"]),
        }
        if not self.trainer.sanity_checking and self.trainer.is_global_zero:
            self._log_panels()

    def _log_panels(self) -> None:
        """image | ground truth | prediction (network resolution), saved as PNG and to loggers."""
        if self._panel_batch is None:
            return
        images, masks, preds = self._panel_batch
        norm = self.hparams["normalize"]
        rows = []
        for image, mask, pred in zip(images, masks, preds, strict=True):
            gt = F.interpolate(mask[None, None].float(), size=pred.shape, mode="nearest")[
                0, 0
            ].long()
            rows.append(
                panel(
                    denormalize(image, norm["mean"], norm["std"]), gt, pred, self.class_info.palette
                )
            )
        grid = np.concatenate(rows, axis=0)
        out = (
            Path(self.trainer.default_root_dir)
            / "figures"
            / f"val_panel_epoch{self.current_epoch:03d}.png"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        Image.fromarray(grid).save(out)
        for logger in self.loggers:
            kind = type(logger).__name__
            if kind == "WandbLogger":
                logger.log_image(key="val/panel", images=[grid], step=self.global_step)
            elif kind == "TensorBoardLogger":
                logger.experiment.add_image("val/panel", grid, self.global_step, dataformats="HWC")

    # ------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        if any("_orig_mod." in k for k in state):
            checkpoint["state_dict"] = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
