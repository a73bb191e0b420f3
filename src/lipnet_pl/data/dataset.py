"""Decoding LIP files (any image mode -> RGB, 8-bit or palette labels -> class ids) and the Dataset.

A sample is a dict ``{"image": tv_tensors.Image uint8 [3,H,W], "mask": tv_tensors.Mask uint8
[H,W] (labelled splits), "orig_size": (H, W), "id": str}`` before the split's transform.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_jpeg, decode_png

from lipnet_pl.data.layout import SplitFiles
from lipnet_pl.data.sampling import sample_seed
from lipnet_pl.errors import UserError

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


BAD_LABELS = ("error", "ignore")
"""``data.bad_labels``: what a label value outside the classes does."""


def invalid_values(num_classes: int, ignore_index: int) -> np.ndarray:
    """256 flags, true for the uint8 label values that are neither a class nor ignore."""
    invalid = np.ones(256, dtype=bool)
    invalid[: max(0, min(int(num_classes), 256))] = False
    if 0 <= int(ignore_index) < 256:
        invalid[int(ignore_index)] = False
    return invalid


class DataFileError(UserError, ValueError):
    """A LIP file that cannot be used; ``paths`` names the offending file(s)."""

    def __init__(self, message: str, *paths: Path):
        super().__init__(message)
        self.paths = tuple(Path(p) for p in paths)


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; 16-bit and 32-bit greyscale are scaled to 8 bits first."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        arr = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    return img.convert("RGB")


def decode_image(path: str | Path, exif: bool = False) -> torch.Tensor:
    """Read an image of any mode as uint8 RGB ``[3,H,W]``; errors name the file.

    JPEGs go through torchvision's libjpeg-turbo decoder (fast, handles greyscale and CMYK);
    anything else, or a JPEG it rejects, through PIL. ``exif=True`` turns the pixels upright by
    the EXIF orientation tag (phone portraits are stored sideways with that tag); LIP's labels
    are aligned with the stored pixels, so training and eval read them as stored.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFileError(f"cannot read image {path}: {err}", path) from err
    if data[:3] == _JPEG_MAGIC:
        try:
            return decode_jpeg(
                torch.frombuffer(bytearray(data), dtype=torch.uint8),
                mode=ImageReadMode.RGB,
                apply_exif_orientation=exif,
            )
        except RuntimeError:
            pass  # fall back to PIL, which reads more JPEG variants
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _pil_to_rgb(ImageOps.exif_transpose(img) if exif else img)
    except Exception as err:  # PIL raises many types for truncated/corrupt files
        raise DataFileError(f"cannot decode image {path}: {err}", path) from err
    return torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def decode_label(path: str | Path) -> torch.Tensor:
    """Read a label PNG (8-bit greyscale, or palette whose indices ARE the class ids) as uint8 [H,W]."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFileError(f"cannot read label {path}: {err}", path) from err
    # Fast path: 8-bit greyscale PNG (IHDR bit depth 8, colour type 0), the LIP format.
    if data[:8] == _PNG_MAGIC and data[12:16] == b"IHDR" and data[24:26] == b"\x08\x00":
        try:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_png(buf, mode=ImageReadMode.UNCHANGED)[0]
        except RuntimeError:
            pass  # let PIL produce the error message
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            if mode in ("L", "P"):
                arr = np.array(img, dtype=np.uint8)
            elif mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
                wide = np.asarray(img)
                if wide.size and (wide.min() < 0 or wide.max() > 255):
                    raise DataFileError(
                        f"label {path} has values outside 0..255 (mode {mode}): labels must be class "
                        "ids 0..num_classes-1 with 255 = ignore",
                        path,
                    )
                arr = wide.astype(np.uint8)
            else:
                raise DataFileError(
                    f"label {path} is a {mode} image: expected a single-channel 8-bit or palette PNG "
                    "of class ids (convert colour-coded labels to ids first)",
                    path,
                )
    except DataFileError:
        raise
    except Exception as err:
        raise DataFileError(f"cannot decode label {path}: {err}", path) from err
    return torch.from_numpy(arr)


class LIPDataset(Dataset):
    """One split of a LIP-format root; ``transform`` maps the sample dict (see module docstring).

    With ``skip_bad=True`` an unreadable or mismatched sample is replaced by the next good one,
    with a warning naming the file; ``num_skipped`` counts them (per process: each DataLoader
    worker keeps its own count). Otherwise the error is raised.

    Keys are indices, or ``(epoch, index)`` pairs (:class:`~lipnet_pl.data.sampling.EpochSampler`):
    then the transform's randomness is seeded from ``(seed, epoch, index)``, so a sample's
    augmentation does not depend on the worker, the process or a resumed run.

    With ``num_classes``, every label is checked as it is loaded (in the workers: one bincount
    of the uint8 map, no pass over the dataset at start-up): a value that is neither a class nor
    ``ignore_index`` is a :class:`DataFileError` naming the file, or, with
    ``bad_labels="ignore"``, becomes ``ignore_index`` with a warning naming the file. Without
    the check the loss would fail far from the cause (on a GPU: a device-side assert).
    """

    def __init__(
        self,
        files: SplitFiles,
        transform: Callable[[dict], dict] | None = None,
        with_labels: bool | None = None,
        skip_bad: bool = False,
        seed: int = 0,
        num_classes: int | None = None,
        ignore_index: int = 255,
        bad_labels: str = "error",
    ):
        self.files = files
        self.num_classes, self.ignore_index = num_classes, int(ignore_index)
        self.bad_labels = bad_labels
        self._invalid = None if num_classes is None else invalid_values(num_classes, ignore_index)
        self.seed = int(seed)
        self.transform = transform
        self.with_labels = files.labelled if with_labels is None else with_labels
        if self.with_labels and not files.labelled:
            raise ValueError(
                f"split {files.split!r} has no labels (image folder {files.image_dir})"
            )
        self.skip_bad = skip_bad
        self.num_skipped = 0
        self.bad_files: list[str] = []

    def __len__(self) -> int:
        return len(self.files.ids)

    def load(self, index: int) -> dict:
        """Decode sample ``index`` without transform; raises DataFileError naming the file(s)."""
        sample_id = self.files.ids[index]
        image_path = self.files.image_path(sample_id)
        if not image_path.is_file():
            raise DataFileError(f"missing image {image_path} (id {sample_id!r})", image_path)
        image = decode_image(image_path)
        sample = {
            "image": tv_tensors.Image(image),
            "orig_size": tuple(image.shape[-2:]),
            "id": sample_id,
        }
        if self.with_labels:
            label_path = self.files.label_path(sample_id)
            if not label_path.is_file():
                raise DataFileError(
                    f"missing label {label_path} for image {image_path}", label_path
                )
            mask = decode_label(label_path)
            if tuple(mask.shape) != tuple(image.shape[-2:]):
                raise DataFileError(
                    f"size mismatch: image {image_path} is {image.shape[-1]}x{image.shape[-2]} (WxH) "
                    f"but label {label_path} is {mask.shape[-1]}x{mask.shape[-2]}",
                    image_path,
                    label_path,
                )
            sample["mask"] = tv_tensors.Mask(self._check_values(mask, label_path))
        return sample

    def _check_values(self, mask: torch.Tensor, path: Path) -> torch.Tensor:
        if self._invalid is None:
            return mask
        counts = np.bincount(mask.numpy().ravel(), minlength=256)
        bad = np.flatnonzero(counts * self._invalid).tolist()
        if not bad:
            return mask
        n, ignore = self.num_classes, self.ignore_index
        if self.bad_labels == "ignore":
            warnings.warn(
                f"label {path}: values {bad} outside the {n} classes set to {ignore} (ignored; "
                "data.bad_labels=ignore)",
                stacklevel=3,
            )
            return mask.masked_fill(torch.from_numpy(self._invalid)[mask.long()], ignore)
        raise DataFileError(
            f"label {path} has values {bad} outside the {n} classes (0..{n - 1}, {ignore} = "
            f"ignore): fix the file, set data.num_classes (and data.classes) to the classes the "
            "labels use, or data.bad_labels=ignore to ignore those pixels",
            path,
        )

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        for attempt in range(len(self)):
            i = (index + attempt) % len(self)
            try:
                sample = self.load(i)
            except DataFileError as err:
                if not self.skip_bad:
                    raise
                self.num_skipped += 1
                self.bad_files.extend(str(p) for p in err.paths)
                warnings.warn(f"skipping bad sample (skip_bad=True): {err}", stacklevel=2)
                continue
            return self._transform(sample, epoch, index)
        raise DataFileError(
            f"every sample of split {self.files.split!r} is unreadable", self.files.image_dir
        )

    def _transform(self, sample: dict, epoch: int | None, index: int) -> dict:
        if self.transform is None:
            return sample
        if epoch is None:
            return self.transform(sample)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, epoch, index))
            return self.transform(sample)
