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
from lipnet_pl.data.media import describe, is_media

OUTPUT_KINDS = ("labels", "color", "overlay", "legend")


@dataclass
class PredictReport:
    """What a run did: counts for the summary line and the exit status."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # files in input folders that are neither images nor videos
    stopped: list[str] = field(default_factory=list)  # live sources that dropped or timed out
    video_stats: dict[str, dict] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.images + self.videos

    def fail(self, path: Path | str, reason: str) -> None:
        self.failed.append((str(path), reason))


def is_stream(spec: str) -> bool:
    """A live or network source PyAV opens: a URL (rtsp/http/udp/...) or a device such as
    ``/dev/video0``."""
    return "://" in spec or spec.startswith("/dev/video")


def collect_inputs(inputs: Iterable[str], report: PredictReport) -> list[tuple[str, Path]]:
    """Files, folders (searched recursively) and streams -> (source, output name) pairs.

    Unusable entries are recorded in ``report`` (the run goes on with the others); files in a
    folder that are neither images nor videos (a ``.txt`` list, ``.DS_Store``) are only counted
    in ``report.ignored``: a folder of photos often holds them, and they are not failures.
    """
    found: list[tuple[str, Path]] = []
    for raw in inputs:
        raw = str(raw)
        if is_stream(raw):
            name = raw.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "stream"
            found.append((raw, Path(f"{name}.mp4")))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            media = [p for p in files if is_media(p) and not p.name.startswith(".")]
            report.ignored += len(files) - len(media)
            found.extend((str(p), p.relative_to(path)) for p in media)
            if not media:
                report.fail(path, f"folder has no images or videos ({describe()})")
        elif path.is_file():
            if is_media(path):
                found.append((str(path), Path(path.name)))
            else:
                report.fail(
                    path, f"unknown extension {path.suffix or '(none)'!r}: use {describe()}"
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
