"""Drawing label maps: palette colouring, overlays, image | ground truth | prediction panels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lipnet_pl.data.classes import IGNORE_INDEX, LIP_PALETTE, ClassInfo


def _palette_lut(palette: Sequence[Sequence[int]], ignore_colour=(255, 255, 255)) -> np.ndarray:
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = np.asarray(palette, dtype=np.uint8)
    lut[IGNORE_INDEX] = ignore_colour
    return lut


def colorize(label, palette: Sequence[Sequence[int]] = LIP_PALETTE) -> np.ndarray:
    """Class-id map (HxW, numpy or tensor) -> HxWx3 uint8 RGB; ignore (255) is white."""
    if isinstance(label, torch.Tensor):
        label = label.detach().cpu().numpy()
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"colorize expects an HxW label map, got shape {label.shape}")
    return _palette_lut(palette)[label.astype(np.uint8)]


def overlay(
    image: np.ndarray, label, palette=LIP_PALETTE, alpha: float = 0.5, rows: int = 512
) -> np.ndarray:
    """Blend the coloured label over an HxWx3 uint8 image; background (0) stays the image.

    Blended ``rows`` rows at a time: the float copies of a whole 8000x8000 photo would take
    2.3 GB; per strip they take a few MB, and the result is the same."""
    image = np.asarray(image)
    lab = label.detach().cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if image.shape[:2] != lab.shape[:2]:
        raise ValueError(f"overlay: image {image.shape[:2]} and label {lab.shape[:2]} differ")
    lut = _palette_lut(palette)
    out = np.empty(image.shape, dtype=np.uint8)
    for top in range(0, lab.shape[0], rows):
        part, img = lab[top : top + rows], image[top : top + rows]
        colours = lut[part.astype(np.uint8)].astype(np.float32)
        fg = ((part != 0) & (part != IGNORE_INDEX))[..., None]
        blend = np.where(fg, (1 - alpha) * img.astype(np.float32) + alpha * colours, img)
        out[top : top + rows] = blend.clip(0, 255).astype(np.uint8)
    return out


def denormalize(image: torch.Tensor, mean, std) -> np.ndarray:
    """3xHxW normalised float tensor -> HxWx3 uint8."""
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(3, 1, 1)
    img = (image * s + m).clamp(0, 1).mul(255).round().byte()
    return img.permute(1, 2, 0).cpu().numpy()


def panel(image: np.ndarray, target, prediction, palette=LIP_PALETTE) -> np.ndarray:
    """image | ground truth | prediction side by side (all HxW of the image)."""
    return np.concatenate(
        [np.asarray(image), colorize(target, palette), colorize(prediction, palette)], axis=1
    )


def legend(
    class_ids, classes=None, swatch: int = 16, row_height: int = 20, width: int = 180
) -> np.ndarray:
    """HxWx3 uint8 image listing ``class_ids`` (e.g. those present in a prediction): a palette
    swatch and the class name per row, so a colour mask can be read without the palette table."""
    from PIL import Image, ImageDraw

    classes = classes or ClassInfo()
    ids = [int(c) for c in class_ids if 0 <= int(c) < classes.num_classes]
    img = Image.new("RGB", (width, max(1, len(ids)) * row_height + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    if not ids:
        draw.text((4, 4), "(no classes)", fill=(0, 0, 0))
    for row, c in enumerate(ids):
        y = 2 + row * row_height
        draw.rectangle(
            [4, y, 4 + swatch, y + swatch], fill=tuple(classes.palette[c]), outline=(0, 0, 0)
        )
        draw.text((8 + swatch, y + 2), f"{c:2d} {classes.names[c]}", fill=(0, 0, 0))
    return np.asarray(img)
