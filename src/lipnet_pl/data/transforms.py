"""Joint image/label transforms built on torchvision.transforms.v2 (tv_tensors.Image / Mask).

Train (``TrainTransform``), in this order:

1. ``RandomHorizontalFlipSwap``: mirror with probability ``flip_p`` AND swap the left/right label
   values with ``ClassInfo.flip_permutation`` (a mirrored left arm is a right arm);
2. ``JitterNormalize``: brightness/contrast/saturation jitter fused with ``ToDtype`` + ``Normalize``
   into one 3x3 colour matrix (no hue: it is the slow one); the label stays uint8;
3. ``RandomScaleRotateCrop``: random scale (relative to ``crop_size`` by default), random offset
   (crop, or pad with image 0 = black / label 255), rotation +-``rotation`` degrees with
   probability ``rotation_p``: ONE affine warp straight to ``crop_size``.

Steps 1-2 run on the decoded image, which is usually smaller than the crop (LIP persons are
~100-400 px): the same result as the textbook order (warp, flip, jitter, normalise) for fewer
pixels, because bilinear warping commutes with the per-pixel colour maths and the pad is filled
with normalised black.

Masks are always resampled with nearest neighbour, never interpolated.
Validation/test (``EvalTransform``): :func:`preprocess` stretches the image to ``crop_size`` for
the network, the label stays at its ORIGINAL size for the metric; ``collate_eval`` batches them.
:func:`preprocess` is also what ``predict`` applies, so evaluation and prediction see the same
network input for the same image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN as IMAGENET_MEAN
from timm.data import IMAGENET_DEFAULT_STD as IMAGENET_STD
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import query_size

from lipnet_pl.data.classes import IGNORE_INDEX

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be an int or [height, width] of positive ints, got {size}")
    return size  # type: ignore[return-value]


class RandomScaleRotateCrop(v2.Transform):
    """Random scale, rotation and crop/pad to ``crop_size`` as ONE affine warp (one grid_sample).

    Scale ``s ~ U(scale_range)`` is relative to ``crop_size`` (``fit="stretch"``: the stretched
    view the network gets at validation, so persons have the same size on average) or to the
    original size (``fit="keep"``, PSPNet-style). The scaled image is placed at a random offset
    (cropped when larger than ``crop_size``, padded when smaller), then rotated by
    ``U(-rotation, rotation)`` degrees about the crop centre with probability ``rotation_p``.
    Outside the image: 0 for the image, ``ignore_index`` for the mask. Images are sampled
    bilinearly and come out float in [0, 1]; masks with nearest neighbour and stay uint8.
    Equivalent to ``RandomResize`` + ``RandomCrop(pad_if_needed)`` + ``RandomRotation`` but about
    3x faster: the warp runs once at the output size instead of three resamplings.
    """

    def __init__(
        self,
        crop_size: Sequence[int],
        scale_range: Sequence[float] = (0.75, 1.25),
        rotation: float = 30.0,
        rotation_p: float = 0.6,
        fit: str = "stretch",
        ignore_index: int = IGNORE_INDEX,
        image_fill: float | Sequence[float] = 0.0,
    ):
        super().__init__()
        self.crop_size = _pair(crop_size, "crop_size")
        fill = torch.as_tensor(image_fill, dtype=torch.float32).flatten()
        if fill.numel() not in (1, 3):
            raise ValueError(f"image_fill must be one value or one per channel, got {image_fill}")
        self.image_fill = fill.view(-1, 1, 1) if bool(fill.ne(0).any()) else None
        lo, hi = (float(s) for s in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(
                f"scale_range must be [low, high] with 0 < low <= high, got {[lo, hi]}"
            )
        if fit not in ("stretch", "keep"):
            raise ValueError(f"fit must be 'stretch' or 'keep', got {fit!r}")
        if not 0 <= float(rotation_p) <= 1 or float(rotation) < 0:
            raise ValueError(
                f"need rotation >= 0 and 0 <= rotation_p <= 1, got {rotation}, {rotation_p}"
            )
        self.scale_range, self.fit = (lo, hi), fit
        self.rotation, self.rotation_p = float(rotation), float(rotation_p)
        self.ignore_index = int(ignore_index)
        ch, cw = self.crop_size
        # output pixel centres (x along width, y along height)
        self._u = torch.arange(cw, dtype=torch.float32).add_(0.5).view(1, cw, 1)
        self._v = torch.arange(ch, dtype=torch.float32).add_(0.5).view(ch, 1, 1)

    def draw(self, h: int, w: int) -> tuple[float, float, float, float]:
        """Random ``(scale, offset_x, offset_y, angle)`` for an ``h`` x ``w`` input (global RNG)."""
        ch, cw = self.crop_size
        s = float(torch.empty(()).uniform_(*self.scale_range))
        sh, sw = (s * ch, s * cw) if self.fit == "stretch" else (s * h, s * w)
        ox = float(torch.empty(()).uniform_(min(0.0, cw - sw), max(0.0, cw - sw) + 1e-9))
        oy = float(torch.empty(()).uniform_(min(0.0, ch - sh), max(0.0, ch - sh) + 1e-9))
        angle = 0.0
        if self.rotation > 0 and float(torch.rand(())) < self.rotation_p:
            angle = float(torch.empty(()).uniform_(-self.rotation, self.rotation))
        return s, ox, oy, angle

    def matrix(self, h: int, w: int, drawn: Sequence[float]) -> list[list[float]]:
        """2x3 map from output pixel (x, y) to the normalised input coordinate (align_corners
        False, -1..1), which does not depend on the input's resolution: the same matrix warps
        the decoded image or a resized copy of it (``augment_on=device``)."""
        ch, cw = self.crop_size
        s, ox, oy, angle = drawn
        sh, sw = (s * ch, s * cw) if self.fit == "stretch" else (s * h, s * w)
        # output pixel p -> unrotated canvas q = R(-angle)(p - c) + c -> input x = (q - o) * size / scaled
        a = math.radians(angle)
        cos, sin = math.cos(a), math.sin(a)
        cx, cy = cw / 2, ch / 2
        kx, ky = w / sw, h / sh
        # normalised input coordinate (align_corners=False): n = 2 * x / size - 1
        m00, m01 = cos * kx * 2 / w, sin * kx * 2 / w
        m10, m11 = -sin * ky * 2 / h, cos * ky * 2 / h
        m02 = (cx - cos * cx - sin * cy - ox) * kx * 2 / w - 1
        m12 = (cy + sin * cx - cos * cy - oy) * ky * 2 / h - 1
        return [[m00, m01, m02], [m10, m11, m12]]

    def grid(self, m: Sequence[Sequence[float]]) -> torch.Tensor:
        """The sampling grid ``[1, ch, cw, 2]`` of :meth:`matrix` ``m`` at the output pixel centres."""
        (m00, m01, m02), (m10, m11, m12) = m
        col_u, col_v, col_1 = torch.tensor([[m00, m10], [m01, m11], [m02, m12]])
        return (self._u * col_u + (self._v * col_v + col_1)).unsqueeze(0)  # [1, ch, cw, (x, y)]

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        h, w = query_size(flat_inputs)
        s, ox, oy, angle = drawn = self.draw(h, w)
        grid = self.grid(self.matrix(h, w, drawn))
        return {"grid": grid, "angle": angle, "scale": s, "offset": (ox, oy)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        grid = params["grid"]
        if isinstance(inpt, tv_tensors.Mask):
            m = inpt.as_subclass(torch.Tensor)
            x = (m.float() - self.ignore_index).view(1, 1, *m.shape[-2:])
            y = torch.nn.functional.grid_sample(x, grid, mode="nearest", align_corners=False)
            out = y.add_(self.ignore_index).round_().to(m.dtype)
            out = out.view(*m.shape[:-2], *grid.shape[1:3])
            return tv_tensors.wrap(out, like=inpt)
        if isinstance(inpt, tv_tensors.Image):
            img = inpt.as_subclass(torch.Tensor)
            x = img.float() if img.dtype != torch.uint8 else img.float().mul_(1 / 255)
            if self.image_fill is not None:  # grid_sample pads with 0: shift so the pad is the fill
                x = x - self.image_fill
            x = x.unsqueeze(0).contiguous(memory_format=torch.channels_last)
            y = torch.nn.functional.grid_sample(x, grid, mode="bilinear", align_corners=False)[0]
            if self.image_fill is not None:
                y = y + self.image_fill
            return tv_tensors.Image(y.contiguous())
        return inpt


class RandomHorizontalFlipSwap(v2.RandomHorizontalFlip):
    """Horizontal flip that also swaps left/right class ids of masks (``perm[c]`` = mirrored class)."""

    def __init__(self, flip_permutation: Sequence[int], p: float = 0.5):
        super().__init__(p=p)
        lut = torch.arange(256, dtype=torch.int64)
        lut[: len(flip_permutation)] = torch.as_tensor(list(flip_permutation), dtype=torch.int64)
        self.lut = lut

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        out = super().transform(inpt, params)
        if isinstance(out, tv_tensors.Mask):
            swapped = self.lut.to(out.dtype)[out.as_subclass(torch.Tensor).long()]
            out = tv_tensors.wrap(swapped, like=out)
        return out


class JitterNormalize(v2.Transform):
    """Colour jitter + uint8->float + mean/std normalisation as ONE 3x3 matrix per image.

    Same maths as ``v2.ColorJitter(brightness, contrast, saturation, hue=0)`` (fixed order,
    clamped once at the end instead of after each step) followed by ``v2.ToDtype(float32,
    scale=True)`` and ``v2.Normalize(mean, std)``, about 4x faster. Masks pass unchanged.
    """

    def __init__(
        self,
        brightness: float = 0.0,
        contrast: float = 0.0,
        saturation: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        super().__init__()
        for name, value in (
            ("brightness", brightness),
            ("contrast", contrast),
            ("saturation", saturation),
        ):
            if not 0 <= float(value) < 1:
                raise ValueError(f"color jitter {name} must be in [0, 1), got {value}")
        self.jitter = (float(brightness), float(contrast), float(saturation))
        self.mean = torch.tensor([float(m) for m in mean]).view(3, 1)
        self.std = torch.tensor([float(s) for s in std]).view(3, 1)
        if self.mean.numel() != 3 or self.std.numel() != 3 or (self.std <= 0).any():
            raise ValueError(
                f"mean/std must be 3 values each (std > 0), got mean={list(mean)} std={list(std)}"
            )
        self.gray = torch.tensor(GRAY_WEIGHTS).view(1, 3)
        self.lo = (-self.mean / self.std).flatten().tolist()
        self.hi = ((1 - self.mean) / self.std).flatten().tolist()

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        b, c, s = (
            float(torch.empty(()).uniform_(1 - j, 1 + j)) if j > 0 else 1.0 for j in self.jitter
        )
        return {"brightness": b, "contrast": c, "saturation": s}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Image):
            return inpt
        img = inpt.as_subclass(torch.Tensor)
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(
                f"JitterNormalize expects an RGB image [3,H,W], got shape {list(img.shape)}"
            )
        x = img.reshape(3, -1).float()
        if img.dtype == torch.uint8:
            x = x.mul_(1 / 255)
        b, c, s = params["brightness"], params["contrast"], params["saturation"]
        sat = s * torch.eye(3) + (1 - s) * self.gray.expand(3, 3)  # rows sum to 1
        matrix = (c * b) * sat / self.std
        offset = torch.zeros(3, 1)
        if c != 1.0:
            mean_gray = float(self.gray @ x.mean(dim=1, keepdim=True))
            offset += (1 - c) * b * mean_gray
        offset = (offset - self.mean) / self.std
        y = torch.addmm(offset, matrix, x)
        for c in range(3):  # clamp to the normalised image of [0, 1]
            y[c].clamp_(self.lo[c], self.hi[c])
        return tv_tensors.Image(y.view(img.shape))


class TrainTransform:
    """Joint train augmentation on a sample dict ``{"image", "mask", "id", ...}`` (see module doc).

    :meth:`draw` makes every random choice of one sample (flip, jitter, scale/offset/angle) in
    one fixed order from the global RNG; :meth:`apply` runs the steps with them. The device
    path (:mod:`lipnet_pl.data.device_augment`) calls the same :meth:`draw` in its workers, so
    both paths give a sample the same augmentation for the same seed.
    """

    def __init__(
        self,
        crop_size: Sequence[int] = (473, 473),
        flip_permutation: Sequence[int] = tuple(range(20)),
        scale_range: Sequence[float] = (0.75, 1.25),
        rotation: float = 30.0,
        rotation_p: float = 0.6,
        flip_p: float = 0.5,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.3,
        fit: str = "stretch",
        *,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        ignore_index: int = IGNORE_INDEX,
    ):
        # Flip and colour work run on the decoded image (usually smaller than the crop), the warp
        # last: same result, fewer pixels. Warping the normalised image is exact (bilinear
        # sampling is linear) when the pad is normalised black, -mean/std ("image 0").
        self.jitter = JitterNormalize(brightness, contrast, saturation, mean, std)
        black = (-self.jitter.mean / self.jitter.std).flatten().tolist()
        if not 0 <= float(flip_p) <= 1:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        self.flip_p = float(flip_p)
        self.flip = RandomHorizontalFlipSwap(flip_permutation, p=self.flip_p)
        self.crop = RandomScaleRotateCrop(
            crop_size,
            tuple(float(s) for s in scale_range),
            float(rotation),
            float(rotation_p),
            fit,
            ignore_index,
            image_fill=black,
        )
        self.crop_size = self.crop.crop_size
        self.ignore_index = int(ignore_index)

    def draw(self, h: int, w: int) -> dict[str, Any]:
        """The random choices for an ``h`` x ``w`` sample, drawn in the order of the steps."""
        # torch.rand(1) >= p means no flip: v2.RandomHorizontalFlip's own test and RNG use
        flip = self.flip_p > 0 and not bool(torch.rand(1) >= self.flip_p)
        jitter = self.jitter.make_params([])
        return {"flip": flip, "jitter": jitter, "crop": self.crop.draw(h, w)}

    def apply(self, image: torch.Tensor, mask: torch.Tensor, params: dict[str, Any]):
        """uint8 image ``[3,H,W]`` and mask ``[H,W]`` -> normalised float crop and uint8 mask."""
        image, mask = tv_tensors.Image(image), tv_tensors.Mask(mask)
        if params["flip"]:
            image = self.flip.transform(image, {})
            mask = self.flip.transform(mask, {})
        image = self.jitter.transform(image, params["jitter"])
        h, w = image.shape[-2:]
        grid = {"grid": self.crop.grid(self.crop.matrix(h, w, params["crop"]))}
        return self.crop.transform(image, grid), self.crop.transform(mask, grid)

    def __call__(self, sample: dict) -> dict:
        image, mask = sample["image"], sample["mask"]
        image, mask = self.apply(image, mask, self.draw(*image.shape[-2:]))
        return {
            "image": image.as_subclass(torch.Tensor),
            "mask": mask.as_subclass(torch.Tensor),
            "id": sample["id"],
        }


def preprocess(
    image: torch.Tensor,
    size: Sequence[int],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 RGB ``[3,H,W]`` (or ``[B,3,H,W]``) -> the network input: stretched to ``size``
    (antialiased, on uint8 as decoded), scaled to 0..1, normalised with ``mean``/``std``.

    The one eval-time preprocessing: evaluation, prediction and calibration all call it.
    """
    if image.dtype != torch.uint8 or image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise ValueError(
            f"preprocess expects uint8 RGB [3,H,W] or [B,3,H,W], got {image.dtype} "
            f"{list(image.shape)}"
        )
    size = list(_pair(size, "size"))
    if list(image.shape[-2:]) != size:
        image = v2.functional.resize(image, size, antialias=True)
    x = image.float().div_(255)
    return v2.functional.normalize(x, [float(m) for m in mean], [float(s) for s in std])


class EvalTransform:
    """:func:`preprocess` the image to ``crop_size``; the label keeps its original size."""

    def __init__(
        self,
        crop_size: Sequence[int] = (473, 473),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.size = _pair(crop_size, "crop_size")
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"].as_subclass(torch.Tensor)
        out = {
            "image": preprocess(image, self.size, self.mean, self.std),
            "orig_size": sample["orig_size"],
            "id": sample["id"],
        }
        if "mask" in sample:
            out["mask"] = sample["mask"].as_subclass(torch.Tensor)
        return out


def collate_eval(batch: list[dict]) -> dict:
    """Stack images; keep original-size masks as a list; ``orig_size`` long [B,2]; ids as a list."""
    out = {
        "image": torch.stack([b["image"] for b in batch]),
        "orig_size": torch.tensor([list(b["orig_size"]) for b in batch], dtype=torch.long),
        "id": [b["id"] for b in batch],
    }
    if batch and "mask" in batch[0]:
        out["mask"] = [b["mask"] for b in batch]
    return out
