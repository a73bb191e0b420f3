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
from lipnet_pl.data.media import describe, is_media, is_video
from lipnet_pl.outputs import atomic_save

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
    renamed: list[tuple[str, Path]] = field(default_factory=list)  # (source, name): collisions
    skipped: int = 0  # images whose outputs were all there (skip_existing=true)
    video_stats: dict[str, dict] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.images + self.videos + self.skipped

    def fail(self, path: Path | str, reason: str) -> None:
        self.failed.append((str(path), reason))


def over_pixel_limit(path: str | Path, max_pixels: int | None) -> str | None:
    """Why ``path`` is too large to parse (read from its header, nothing decoded), or None.

    A 2.8 MB JPEG can hold 13500x13500 pixels (a decompression bomb): decoded, with its label
    map and overlay, that is gigabytes. Files PIL cannot open are left to the decoder's error."""
    if not max_pixels:
        return None
    import warnings

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # PIL's own bomb check
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = image.size
    except Exception:
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if width * height <= int(max_pixels):
        return None
    return (
        f"{width}x{height} = {width * height / 1e6:.0f} MP is over max_pixels={int(max_pixels)} "
        f"({int(max_pixels) / 1e6:.0f} MP): raise max_pixels if the machine has the memory "
        "(docs/inference.md: about 13 bytes per pixel), or resize the image"
    )


def is_stream(spec: str) -> bool:
    """A live or network source PyAV opens: a URL (rtsp/http/udp/...) or a device such as
    ``/dev/video0``."""
    return "://" in spec or spec.startswith("/dev/video")


def collect_inputs(
    inputs: Iterable[str], report: PredictReport, exclude: Iterable[Path] = ()
) -> list[tuple[str, Path]]:
    """Files, folders (searched recursively) and streams -> (source, output name) pairs.

    Unusable entries are recorded in ``report`` (the run goes on with the others); files in a
    folder that are neither images nor videos (a ``.txt`` list, ``.DS_Store``) are only counted
    in ``report.ignored``: a folder of photos often holds them, and they are not failures.
    Folders in ``exclude`` (the outputs of this and earlier runs) are never searched: a
    rerun must not parse the previous run's PNGs.
    """
    skip = [Path(e).expanduser().resolve() for e in exclude]
    found: list[tuple[str, Path]] = []
    for raw in inputs:
        raw = str(raw)
        if is_stream(raw):
            name = raw.rstrip("/").rsplit("/", 1)[-1].split("?")[0] or "stream"
            found.append((raw, Path(f"{name}.mp4")))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            # only output folders INSIDE the input are skipped (input=outputs/... is fine)
            inside = [e for e in skip if e != path.resolve() and e.is_relative_to(path.resolve())]
            files = sorted(p for p in path.rglob("*") if p.is_file() and not _under(p, inside))
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
    return distinct_names(found, report)


def _under(path: Path, folders: list[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved.is_relative_to(folder) for folder in folders)


def _output_key(rel: Path) -> tuple[bool, str]:
    """What decides an input's output files: images -> ``<kind>/<rel without suffix>.png``,
    videos -> ``<rel without suffix>_overlay.mp4``."""
    return is_video(rel), rel.with_suffix("").as_posix()


def distinct_names(found: list[tuple[str, Path]], report: PredictReport) -> list[tuple[str, Path]]:
    """Inputs whose outputs would share a name (``x.jpg`` and ``x.png``; two input folders with
    the same relative names) get distinct ones: ``x_jpg.png``, ``x_png.png``, then ``_2``,
    ``_3``... in input order. Names that do not collide are kept (and never taken)."""
    from collections import Counter

    counts = Counter(_output_key(rel) for _, rel in found)
    taken = {key for key, n in counts.items() if n == 1}
    named = []
    for source, rel in found:
        if counts[_output_key(rel)] == 1:
            named.append((source, rel))
            continue
        base = f"{rel.stem}_{rel.suffix.lstrip('.').lower() or 'file'}"
        candidate, n = rel.with_name(base + rel.suffix), 2
        while _output_key(candidate) in taken:
            candidate, n = rel.with_name(f"{base}_{n}{rel.suffix}"), n + 1
        taken.add(_output_key(candidate))
        named.append((source, candidate))
        report.renamed.append((source, candidate))
    return named


def outputs_exist(output: Path, rel: Path, save: Mapping[str, bool]) -> bool:
    """Every enabled output of one image is on disk (each was renamed into place whole, so an
    interrupted run leaves none half-written)."""
    kinds = [kind for kind in OUTPUT_KINDS if save.get(kind, True)]
    return bool(kinds) and all((output / k / rel.with_suffix(".png")).is_file() for k in kinds)


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
            made = makers[kind]()
            atomic_save(
                output / kind / rel.with_suffix(".png"),
                lambda tmp, made=made: made.save(tmp, format="PNG"),
                clean=False,  # once per run (predict), not once per file
            )
