"""``data.augment_on=device``: workers decode and resize, the accelerator augments the batch.

Why: LIP-Net's training step on a current GPU takes a few ms per batch, and the CPU warp of
:class:`~lipnet_pl.data.transforms.TrainTransform` (bilinear to 473x473, float32 out) is what a
loader worker spends most of its time on. Here a worker only

1. decodes the image and label (as before, labels checked),
2. draws the sample's random choices with :meth:`TrainTransform.draw` (the SAME function, in the
   same order, from the same per-sample seed as ``augment_on=workers``: same distributions,
   same flip/left-right-swap decisions, and a resumed run sees the same augmentation),
3. resizes both to ``crop_size`` (image bilinear antialiased, mask nearest) and ships uint8
   image + mask (1/4 of float32's bytes through ``/dev/shm`` and the host-to-device copy) plus
   10 floats: ``[flip, brightness, contrast, saturation, theta (2x3)]``.

:class:`DeviceAugment` then runs on the whole batch where the model is: colour jitter and
normalisation as one 3x3 matrix per image, and ONE affine grid (``F.affine_grid``'s) + ``F.grid_sample`` per
batch for scale, rotation, crop/pad and flip (bilinear for images, nearest for masks, normalised
black / 255 outside), then the left/right label swap of the flipped masks by a lookup table.

Why hand-written and not kornia or torchvision v2 on batches: v2 draws ONE set of parameters per
call (per batch, not per image) and kornia is a new dependency whose random draws differ from
the worker path's; equality with the worker path is the contract, and ``affine_grid`` +
``grid_sample`` with the worker path's own matrix (:meth:`RandomScaleRotateCrop.matrix`, in
normalised coordinates, so independent of the resize) gives it in ~40 lines of plain torch.

The two paths differ only by interpolation: the device path resamples the resized image (a
second bilinear step; for ``fit=keep`` crops of images much larger than ``crop_size`` that costs
detail), and contrast uses the mean grey of the resized image.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from lipnet_pl.data.transforms import GRAY_WEIGHTS, TrainTransform

AUGMENT_ON = ("auto", "workers", "device")
"""``data.augment_on``: auto = device when training on an accelerator, workers on the CPU."""

NUM_PARAMS = 10


class WorkerSide:
    """The loader worker's part of ``augment_on=device``: decode -> draw -> resize, uint8 out."""

    def __init__(self, train: TrainTransform):
        self.train = train
        self.size = list(train.crop_size)

    def params(self, h: int, w: int) -> torch.Tensor:
        """:meth:`TrainTransform.draw` for an ``h`` x ``w`` sample as the 10 floats shipped."""
        drawn = self.train.draw(h, w)
        theta = self.train.crop.matrix(h, w, drawn["crop"])
        ch, cw = self.size
        # pixel-centre output coordinates -> affine_grid's normalised ones: x = (xn + 1) * cw / 2
        rows = [[m[0] * cw / 2, m[1] * ch / 2, m[2] + (m[0] * cw + m[1] * ch) / 2] for m in theta]
        if drawn["flip"]:  # flipping the input = sampling it at -x (align_corners=False)
            rows[0] = [-v for v in rows[0]]
        j = drawn["jitter"]
        head = [float(drawn["flip"]), j["brightness"], j["contrast"], j["saturation"]]
        return torch.tensor(head + rows[0] + rows[1], dtype=torch.float32)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].as_subclass(torch.Tensor)
        mask = sample["mask"].as_subclass(torch.Tensor)
        aug = self.params(*image.shape[-2:])
        if list(image.shape[-2:]) != self.size:
            image = TF.resize(image, self.size, antialias=True)
            mask = TF.resize(mask[None], self.size, InterpolationMode.NEAREST_EXACT)[0]
        return {"image": image, "mask": mask, "aug": aug, "id": sample["id"]}


class DeviceAugment:
    """The batched device part: ``{"image" uint8, "mask" uint8, "aug"}`` -> the train batch
    of ``augment_on=workers`` (normalised float image, uint8 mask), on the batch's device."""

    def __init__(self, train: TrainTransform):
        jitter = train.jitter
        self.mean, self.std = jitter.mean.view(1, 3, 1, 1), jitter.std.view(1, 3, 1, 1)
        self.lo = (-self.mean / self.std).view(1, 3, 1, 1)  # normalised black = the pad
        self.hi = ((1 - self.mean) / self.std).view(1, 3, 1, 1)
        self.bounds = list(zip(self.lo.flatten().tolist(), self.hi.flatten().tolist(), strict=True))
        self.gray = torch.tensor(GRAY_WEIGHTS)
        self.lut = train.flip.lut.to(torch.uint8)
        self.ignore_index = train.ignore_index
        self.size = list(train.crop_size)
        self._on: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._on:
            names = (self.mean, self.std, self.lo, self.hi, self.gray, self.lut)
            self._on[device] = tuple(t.to(device) for t in names)
        return self._on[device]

    def colour(self, image: torch.Tensor, aug: torch.Tensor) -> torch.Tensor:
        """Jitter + uint8->float + normalise, one 3x3 matrix per image (JitterNormalize's maths)."""
        mean, std, lo, hi, gray, _ = self._constants(image.device)
        x = image.float().mul_(1 / 255)
        b, c, s = aug[:, 1], aug[:, 2], aug[:, 3]
        eye = torch.eye(3, device=x.device)
        sat = s.view(-1, 1, 1) * eye + (1 - s).view(-1, 1, 1) * gray.view(1, 1, 3)
        matrix = (c * b).view(-1, 1, 1) * sat / std.view(1, 3, 1)
        mean_gray = x.mean(dim=(2, 3)) @ gray  # [B]
        offset = ((1 - c) * b * mean_gray).view(-1, 1) - mean.view(1, 3)
        offset = offset / std.view(1, 3)
        y = torch.baddbmm(offset.view(-1, 3, 1), matrix, x.flatten(2)).view_as(x)
        for ch, (low, high) in enumerate(self.bounds):
            y[:, ch].clamp_(low, high)  # scalar bounds: ~3x faster than tensor bounds on CPU
        return y

    def grid(self, theta: torch.Tensor) -> torch.Tensor:
        """``F.affine_grid(theta, size, align_corners=False)`` as two broadcast products: the
        same grid, ~10x cheaper on CPU (affine_grid runs a batched matmul over a base grid)."""
        ch, cw = self.size
        xn = torch.arange(cw, device=theta.device, dtype=theta.dtype).mul_(2 / cw).sub_(1 - 1 / cw)
        yn = torch.arange(ch, device=theta.device, dtype=theta.dtype).mul_(2 / ch).sub_(1 - 1 / ch)
        cols = theta.transpose(1, 2)  # [B, 3, 2]: the x, y and constant columns
        grid = xn.view(1, 1, cw, 1) * cols[:, None, None, 0] + cols[:, None, None, 2]
        return grid + yn.view(1, ch, 1, 1) * cols[:, None, None, 1]

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        image, mask, aug = batch["image"], batch["mask"], batch["aug"].float()
        if image.dtype != torch.uint8 or image.ndim != 4 or aug.shape[-1] != NUM_PARAMS:
            raise ValueError(
                "DeviceAugment expects the batch of data.augment_on=device workers (uint8 image "
                f"[B,3,H,W], aug [B,{NUM_PARAMS}]), got image {image.dtype} {list(image.shape)}"
            )
        *_, lo, _, _, lut = self._constants(image.device)
        n = image.shape[0]
        theta = aug[:, 4:].view(n, 2, 3)
        grid = self.grid(theta)
        x = self.colour(image, aug).sub_(lo)  # grid_sample pads with 0: shift so the pad is black
        x = F.grid_sample(x, grid, mode="bilinear", align_corners=False).add_(lo)
        m = mask.unsqueeze(1).float() - self.ignore_index  # pad 0 -> ignore_index
        m = F.grid_sample(m, grid, mode="nearest", align_corners=False)[:, 0]
        m = m.add_(self.ignore_index).round_().to(torch.uint8)
        flipped = aug[:, 0].view(n, 1, 1) > 0.5
        m = torch.where(flipped, lut[m.long()], m)
        out = {k: v for k, v in batch.items() if k != "aug"}
        out.update(image=x, mask=m)
        return out
