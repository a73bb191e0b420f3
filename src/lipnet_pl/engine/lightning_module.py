"""LightningModule: training and validation of any network of :func:`lipnet_pl.models.build_model`.

It holds the training step (loss), the validation step (standard LIP metrics: one confusion
matrix over the split at original label size, optional TTA) and the optimiser hook-up. The rest
lives in small pieces: optimiser and schedule builders (:mod:`.optim`), divergence guard
(:mod:`.guard`), figures and progress (:mod:`.callbacks`), DistributedSampler padding maths
(:mod:`.distributed`).

Hyper-parameters are primitives and follow the checkpoint contract of
:mod:`lipnet_pl.core.loader`: the :class:`~lipnet_pl.core.spec.ModelSpec` keys ``net``,
``classes``, ``input_size``, ``normalize``, parameters under ``net.``; so checkpoints load with
``torch.load(weights_only=True)`` and without Lightning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lipnet_pl.core.metrics import LIPSegmentationMetrics
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.core.tta import predict_logits, tta_config
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.engine.distributed import padded_sample_mask
from lipnet_pl.engine.losses import SegmentationLoss
from lipnet_pl.engine.optim import (
    DEFAULT_OPTIMIZER,
    DEFAULT_SCHEDULER,
    build_optimizer,
    build_scheduler,
)
from lipnet_pl.models import build_model

# The module widens masks in on_after_batch_transfer on purpose (for any data module): not news.
warnings.filterwarnings("ignore", message=".*overridden `on_after_batch_transfer`.*")


class SegmentationModule(pl.LightningModule):
    """Semantic segmentation training/validation around ``build_model(**net)``.

    ``network``, when given, is used instead of building ``net`` (evaluation of a loaded model,
    e.g. the inference fast path or an ONNX Runtime session); it is not a hyper-parameter.
    """

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
        channels_last: bool = True,
        tta: dict[str, Any] | None = None,
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        info = ClassInfo.from_config(classes)
        net = dict(net)
        net.setdefault("num_classes", info.num_classes)
        if int(net["num_classes"]) != info.num_classes:
            raise ValueError(
                f"model.net.num_classes={net['num_classes']} but the data's class list has "
                f"{info.num_classes} classes: set model.net.num_classes=${{data.num_classes}}"
            )
        norm = dict(normalize or {})
        spec = ModelSpec.from_dict(
            {
                "net": net,
                "classes": info.to_dict(),
                "input_size": list(input_size),
                "normalize": norm,
            }
        )
        self.save_hyperparameters(
            {
                **{k: v for k, v in spec.to_dict().items() if k != "spec_version"},
                "loss": dict(loss or {}),
                "optimizer": dict(optimizer or DEFAULT_OPTIMIZER),
                "scheduler": {**DEFAULT_SCHEDULER, **dict(scheduler or {})},
                "compile": compile if isinstance(compile, str) else bool(compile),
                "sync_batchnorm": bool(sync_batchnorm),
                "channels_last": bool(channels_last),
                "tta": tta_config(tta),
            }
        )
        self.spec = spec
        self.class_info = info
        self.net = network if network is not None else build_model(**net)
        self.loss_fn = SegmentationLoss(
            info.num_classes, ignore_index=info.ignore_index, **self.hparams["loss"]
        )
        self.val_metrics = LIPSegmentationMetrics(info.num_classes, info.ignore_index)
        self.train_loss_mean = MeanMetric()
        self.last_val_results: dict[str, Any] | None = None
        self.best_val_results: dict[str, Any] | None = None
        self._val_seen = 0
        object.__setattr__(self, "_compiled", None)  # kept out of the module tree and state_dict

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, network: nn.Module | None = None, **kwargs: Any
    ) -> SegmentationModule:
        """A module for ``spec`` (e.g. to validate a loaded network with ``trainer.validate``)."""
        d = spec.to_dict()
        return cls(
            net=d["net"],
            classes=d["classes"],
            input_size=d["input_size"],
            normalize=d["normalize"],
            network=network,
            **kwargs,
        )

    # ----------------------------------------------------------------------------- forward
    def setup(self, stage: str) -> None:
        on_gpu = self.trainer.strategy.root_device.type == "cuda"  # torch's SyncBN is GPU-only
        if self.hparams["sync_batchnorm"] and self.trainer.world_size > 1 and on_gpu:
            from timm.layers import convert_sync_batchnorm

            self.net = convert_sync_batchnorm(self.net)
        if self.hparams["channels_last"]:
            self.net = self.net.to(memory_format=torch.channels_last)
        if self.hparams["compile"] and self._compiled is None:
            # compile a handle, never assign it to self.net: no `_orig_mod.` in checkpoints
            backend = (
                "inductor" if self.hparams["compile"] is True else str(self.hparams["compile"])
            )
            object.__setattr__(self, "_compiled", torch.compile(self.net, backend=backend))

    def forward(self, images: Tensor) -> Tensor:
        net = self.net if self._compiled is None else self._compiled
        return net(images)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict:
        """Masks cross host->device as uint8 (1/8 of int64's bytes) and become int64 here;
        images switch to channels_last when the network is. A batch of ``data.augment_on=device``
        workers (it carries ``"aug"``) is augmented here first, by the data module's
        ``device_augment`` (Lightning calls only one of the two modules' hooks)."""
        if "aug" in batch:
            datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
            augment = getattr(datamodule, "device_augment", None)
            if augment is None:
                raise RuntimeError(
                    "a batch of data.augment_on=device workers but no data module with a "
                    "device_augment: train with LIPDataModule (or drop the 'aug' key)"
                )
            batch = augment(batch)
        if isinstance(batch.get("mask"), Tensor):
            batch["mask"] = batch["mask"].long()
        if self.hparams["channels_last"] and isinstance(batch.get("image"), Tensor):
            batch["image"] = batch["image"].contiguous(memory_format=torch.channels_last)
        return batch

    def predict_logits(self, images: Tensor) -> Tensor:
        """Logits at the images' size, with the configured flip / multi-scale TTA."""
        tta = self.hparams["tta"]
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
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        # the epoch mean through a metric: synced over the ranks once per epoch, not every step
        self.train_loss_mean.update(loss.detach(), weight=len(images))
        self.log("train/loss_epoch", self.train_loss_mean, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = build_optimizer(self.net, self.hparams["optimizer"])
        total = int(self.trainer.estimated_stepping_batches)
        return {
            "optimizer": optimizer,
            "lr_scheduler": build_scheduler(optimizer, self.hparams["scheduler"], total),
        }

    # -------------------------------------------------------------------------- validation
    def on_validation_epoch_start(self) -> None:
        self._val_seen = 0

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Tensor]:
        images, masks = batch["image"], list(batch["mask"])
        logits = self.predict_logits(images)
        sampler = getattr(self.trainer.val_dataloaders, "sampler", None)
        keep = padded_sample_mask(sampler, self._val_seen, len(masks))
        self._val_seen += len(masks)
        kept = [i for i, k in enumerate(keep) if k]
        if kept:
            self.val_metrics.update([logits[i] for i in kept], [masks[i] for i in kept])
        return {"logits": logits}

    def on_validation_epoch_end(self) -> None:
        res = self.val_metrics.compute()
        self.val_metrics.reset()
        names = self.class_info.names
        paired = [c for pair in self.class_info.flip_pairs for c in pair]
        lr_miou = res["iou"][paired].mean() if paired else None  # the six left/right classes
        scalars = {f"val/{k}": res[k] for k in ("miou", "pixel_acc", "mean_acc")}
        scalars["val/paper_miou_per_image"] = res["paper_miou_per_image"]
        if lr_miou is not None:
            scalars["val/lr_miou"] = lr_miou
        scalars.update({f"val/iou/{n}": v for n, v in zip(names, res["iou"], strict=True)})
        # identical on every rank (the confusion matrix is synced): averaging them over the
        # ranks is exact, costs one tiny all-reduce per value and is what Lightning expects
        self.log_dict({k: v.float() for k, v in scalars.items()}, sync_dist=True)
        results = {
            **{k: float(res[k]) for k in ("miou", "pixel_acc", "mean_acc", "paper_miou_per_image")},
            "lr_miou": None if lr_miou is None else float(lr_miou),
            "iou": {n: float(v) for n, v in zip(names, res["iou"], strict=True)},
            "confmat": res["confmat"].cpu().tolist(),
            "num_images": int(res["num_images"]),
            "epoch": int(self.current_epoch),
        }
        self.last_val_results = results
        best = self.best_val_results
        if not self.trainer.sanity_checking and (best is None or results["miou"] > best["miou"]):
            self.best_val_results = {k: v for k, v in results.items() if k != "confmat"}

    # ------------------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        if any("_orig_mod." in k for k in state):
            checkpoint["state_dict"] = {k.replace("_orig_mod.", ""): v for k, v in state.items()}
        checkpoint["lipnet_best_val"] = self.best_val_results  # survives a resume

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.best_val_results = checkpoint.get("lipnet_best_val")
