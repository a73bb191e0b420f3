"""A loaded model ready for images: uint8 RGB in, class-id maps at the images' own size out.

It uses the one eval-time preprocessing (:func:`lipnet_pl.data.transforms.preprocess`), the
same TTA code as evaluation and the same logits-to-labels step as the metrics, so ``predict``
and ``eval`` give identical labels for the same image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lipnet_pl.core.labels import labels_uint8, resize_logits
from lipnet_pl.core.loader import LoadedModel
from lipnet_pl.core.tta import predict_logits, tta_config
from lipnet_pl.data.transforms import preprocess
from lipnet_pl.models.fastpath import make_fast
from lipnet_pl.runtime import resolve_device


def inference_network(loaded: LoadedModel, fast: bool = True, compile: bool = False) -> nn.Module:
    """The network eval and predict run: the fast path (BN folded, channels_last, optionally
    compiled) of a PyTorch model; ONNX Runtime models as they are."""
    if loaded.format == "onnx" or not fast:
        return loaded.net.eval()
    return make_fast(loaded.net, compile=compile)


def as_chw_uint8(image: np.ndarray | Tensor) -> Tensor:
    """HxWx3 uint8 array (video frames, PIL) or uint8 [3,H,W] tensor -> uint8 [3,H,W] tensor."""
    if isinstance(image, Tensor):
        return image
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {array.dtype} {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)


class Predictor:
    """``predict(images)`` -> uint8 label maps; ``logits(images)`` -> float logits per image."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "auto",
        tta: Mapping[str, Any] | None = None,
        fast: bool = True,
        compile: bool = False,
    ):
        self.device = resolve_device(device)
        self.spec = loaded.spec
        self.classes = loaded.spec.classes
        self.format = loaded.format
        if loaded.format == "onnx":  # TTA and resizing run where the session runs
            self.device = getattr(loaded.net, "device", self.device)
        else:
            loaded.net.to(self.device)
        self.net = inference_network(loaded, fast=fast, compile=compile)
        self.tta = tta_config(tta)
        self._perm = self.classes.flip_permutation if self.tta["flip"] else None

    @property
    def input_size(self) -> tuple[int, int]:
        return self.spec.input_size

    def batch(self, images: Sequence[np.ndarray | Tensor]) -> Tensor:
        """The network input for ``images`` (preprocessed on the CPU, then moved)."""
        spec = self.spec
        x = torch.stack(
            [preprocess(as_chw_uint8(i), spec.input_size, spec.mean, spec.std) for i in images]
        )
        return x.to(self.device, non_blocking=True)

    @torch.inference_mode()
    def network_logits(self, x: Tensor) -> Tensor:
        """Logits ``[B, C, h, w]`` at the network size for a preprocessed batch, with TTA."""
        return predict_logits(self.net, x, self._perm, self.tta["scales"])

    def logits(self, images: Sequence[np.ndarray | Tensor]) -> list[Tensor]:
        """Per image, float logits ``[C, H, W]`` at the image's own size."""
        out = self.network_logits(self.batch(images))
        return [
            resize_logits(lg, as_chw_uint8(im).shape[-2:])
            for lg, im in zip(out, images, strict=True)
        ]

    def predict(self, images: Sequence[np.ndarray | Tensor]) -> list[np.ndarray]:
        """Per image, an HxW uint8 class-id map at the image's original size (memory bounded
        for any size: :func:`~lipnet_pl.core.labels.labels_uint8`)."""
        out = self.network_logits(self.batch(images))
        return [
            labels_uint8(lg, as_chw_uint8(im).shape[-2:]).numpy()
            for lg, im in zip(out, images, strict=True)
        ]
