"""Prediction inputs and outputs on disk: which files to read, what to write for each image.

For every image, under the output folder:

* ``labels/<name>.png``  LIP-format label map (mode ``L``, value = class id, original image size),
* ``color/<name>.png``   the label map in the class palette,
* ``overlay/<name>.png`` the colours blended over the image,
* ``legend/<name>.png``  swatches and names of the classes present in the prediction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from lipnet_pl.core.viz import colorize, legend, overlay
from lipnet_pl.data.classes import ClassInfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".ts", ".m4v")
OUTPUT_KINDS = ("labels", "color", "overlay", "legend")


@dataclass
class PredictReport:
    """What a run did: counts for the summary line and the exit status."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    video_stats: dict[str, dict] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.images + self.videos

    def fail(self, path: Path | str, reason: str) -> None:
        self.failed.append((str(path), reason))


def supported() -> str:
    return f"images {' '.join(IMAGE_EXTENSIONS)}; videos {' '.join(VIDEO_EXTENSIONS)}"


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def is_stream(spec: str) -> bool:
    """A live or network source PyAV opens: a URL (rtsp/http/udp/...) or a device such as
    ``/dev/video0``."""
    return "://" in spec or spec.startswith("/dev/video")


def collect_inputs(inputs: Iterable[str], report: PredictReport) -> list[tuple[str, Path]]:
    """Files, folders (searched recursively) and streams -> (source, output name) pairs.

    Unusable entries are recorded in ``report`` (the run goes on with the others).
    """
    usable_ext = IMAGE_EXTENSIONS + VIDEO_EXTENSIONS
    found: list[tuple[str, Path]] = []
    for raw in inputs:
        raw = str(raw)
        if is_stream(raw):
            name = raw.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "stream"
            found.append((raw, Path(f"{name}.mp4")))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            for p in files:
                if p.suffix.lower() in usable_ext:
                    found.append((str(p), p.relative_to(path)))
                else:
                    report.fail(p, f"unknown extension {p.suffix or '(none)'!r}: use {supported()}")
            if not any(p.suffix.lower() in usable_ext for p in files):
                report.fail(path, f"folder has no images or videos ({supported()})")
        elif path.is_file():
            if path.suffix.lower() in usable_ext:
                found.append((str(path), Path(path.name)))
            else:
                report.fail(
                    path, f"unknown extension {path.suffix or '(none)'!r}: use {supported()}"
                )
        else:
            report.fail(path, "no such file or folder: check input=")
    return found


def save_outputs(
    output: Path,
    rel: Path,
    image: np.ndarray,
    label: np.ndarray,
    classes: ClassInfo,
    save: Mapping[str, bool],
    alpha: float = 0.5,
) -> None:
    """Write the enabled kinds of :data:`OUTPUT_KINDS` for one image (HxWx3 uint8)."""
    makers = {
        "labels": lambda: Image.fromarray(label, mode="L"),
        "color": lambda: Image.fromarray(colorize(label, classes.palette)),
        "overlay": lambda: Image.fromarray(overlay(image, label, classes.palette, alpha=alpha)),
        "legend": lambda: Image.fromarray(legend(np.unique(label), classes)),
    }
    for kind in OUTPUT_KINDS:
        if save.get(kind, True):
            dest = output / kind / rel.with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            makers[kind]().save(dest)
