"""Human parsing of images, folders and videos: ``python -m lipnet_pl.predict``.

    python -m lipnet_pl.predict ckpt_path=runs/x/checkpoints/last.ckpt input=photos/ output=out/

For every image it writes, under ``output``:

* ``labels/<name>.png``  LIP-format label map (mode ``L``, value = class id, original image size),
* ``color/<name>.png``   the label map in the class palette,
* ``overlay/<name>.png`` the colours blended over the image,
* ``legend/<name>.png``  swatches and names of the classes present in the prediction.

A video (mp4/avi/mov/mkv/webm) gives ``<name>_overlay.mp4`` plus a legend of every class seen,
and the measured frames per second is printed. Images are resized (stretched) to the
checkpoint's ``input_size`` for the network; the logits are resized back to the original size
(bilinear) before the argmax, so labels line up with the input pixel for pixel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torchvision.transforms.v2 import functional as TF

from lipnet_pl.checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LoadedModel,
    load_model_from_checkpoint,
)
from lipnet_pl.data.classes import ClassInfo
from lipnet_pl.data.dataset import DataFileError, decode_image
from lipnet_pl.models.fastpath import make_fast
from lipnet_pl.tta import predict_logits
from lipnet_pl.viz import colorize, legend, overlay

log = logging.getLogger(__name__)
console = Console(soft_wrap=True)  # long paths stay on one greppable line

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"device={device!r} is not a torch device: use auto, cpu or cuda[:N]"
        ) from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available: use device=auto or cpu")
    return dev


class Predictor:
    """Network + preprocessing of a checkpoint: uint8 RGB images in, class-id maps out."""

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "cpu",
        flip: bool = False,
        fast: bool = True,
        compile: bool = False,
    ):
        self.device = resolve_device(device) if isinstance(device, str) else device
        self.classes: ClassInfo = loaded.classes
        self.input_size = tuple(loaded.input_size)
        net = loaded.net.to(self.device).eval()
        self.net: nn.Module = make_fast(net, compile=compile) if fast else net
        self.flip_permutation = list(self.classes.flip_permutation) if flip else None
        self.mean = torch.tensor(loaded.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(loaded.std, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """HxWx3 uint8 images -> normalised [B, 3, *input_size] batch (stretched, antialiased)."""
        batch = []
        for image in images:
            x = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).to(self.device)
            x = x.float().div_(255).unsqueeze(0)
            batch.append(TF.resize(x, list(self.input_size), antialias=True))
        return (torch.cat(batch) - self.mean) / self.std

    @torch.inference_mode()
    def logits(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        """Per image, float logits [C, H, W] at the image's own size."""
        out = predict_logits(self.net, self.preprocess(images), self.flip_permutation)
        return [
            F.interpolate(
                out[i : i + 1].float(), size=img.shape[:2], mode="bilinear", align_corners=False
            )[0]
            for i, img in enumerate(images)
        ]

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per image, an HxW uint8 class-id map at the image's original size."""
        return [lg.argmax(0).to(torch.uint8).cpu().numpy() for lg in self.logits(images)]


@dataclass
class PredictReport:
    """What a run did: counts for the summary line and the exit status."""

    images: int = 0
    videos: int = 0
    frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    video_fps: dict[str, float] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.images + self.videos

    def fail(self, path: Path | str, reason: str) -> None:
        self.failed.append((str(path), reason))
        console.print(f"[red]skipped[/red] {path}: {reason}")


def load_image(path: Path) -> np.ndarray:
    """Any image mode (grayscale, palette, RGBA, CMYK, 16-bit) -> HxWx3 uint8 RGB, decoded exactly
    as training and evaluation decode it (errors name the file)."""
    return decode_image(path).permute(1, 2, 0).numpy()


def _supported() -> str:
    return f"images {' '.join(IMAGE_EXTENSIONS)}; videos {' '.join(VIDEO_EXTENSIONS)}"


def collect_inputs(inputs: Iterable[str | Path], report: PredictReport) -> list[tuple[Path, Path]]:
    """Expand files and folders into (file, name relative to its input) pairs; report bad ones."""
    found: list[tuple[Path, Path]] = []
    for raw in inputs:
        path = Path(raw).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            usable = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS]
            for p in files:
                if p not in usable:
                    report.fail(
                        p,
                        f"unknown extension {p.suffix or '(none)'!r}: supported are {_supported()}",
                    )
            if not usable:
                report.fail(path, f"directory has no images or videos (supported: {_supported()})")
            found += [(p, p.relative_to(path)) for p in usable]
        elif path.is_file():
            if path.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
                found.append((path, Path(path.name)))
            else:
                report.fail(
                    path,
                    f"unknown extension {path.suffix or '(none)'!r}: supported are {_supported()}",
                )
        else:
            report.fail(path, "no such file or directory: check input=")
    return found


def _save_outputs(
    output: Path, rel: Path, image: np.ndarray, label: np.ndarray, predictor: Predictor, save, alpha
) -> None:
    palette = predictor.classes.palette
    stem = rel.with_suffix(".png")
    targets = {
        "labels": lambda: Image.fromarray(label, mode="L"),
        "color": lambda: Image.fromarray(colorize(label, palette)),
        "overlay": lambda: Image.fromarray(overlay(image, label, palette, alpha=alpha)),
        "legend": lambda: Image.fromarray(legend(np.unique(label), predictor.classes)),
    }
    for kind, make in targets.items():
        if save.get(kind, True):
            dest = output / kind / stem
            dest.parent.mkdir(parents=True, exist_ok=True)
            make().save(dest)


def _batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def predict_images(
    predictor: Predictor,
    files: Sequence[tuple[Path, Path]],
    output: Path,
    report: PredictReport,
    batch_size: int = 4,
    save: dict | None = None,
    alpha: float = 0.5,
) -> None:
    """Predict ``files`` (image paths with their output names) in batches, saving every output."""
    save = save or {}
    with _progress() as progress:
        task = progress.add_task("images", total=len(files))
        for chunk in _batched(list(files), batch_size):
            loaded = []
            for path, rel in chunk:
                try:
                    loaded.append((rel, load_image(path)))
                except DataFileError as err:
                    report.fail(path, str(err))
                    progress.advance(task)
            if not loaded:
                continue
            labels = predictor.predict([img for _, img in loaded])
            for (rel, img), label in zip(loaded, labels, strict=True):
                _save_outputs(output, rel, img, label, predictor, save, alpha)
                report.images += 1
                progress.advance(task)


def predict_video(
    predictor: Predictor,
    path: Path,
    rel: Path,
    output: Path,
    report: PredictReport,
    batch_size: int = 4,
    alpha: float = 0.5,
    codec: str = "libx264",
    max_frames: int | None = None,
) -> float:
    """Overlay every frame of ``path`` into ``<output>/<name>_overlay.mp4``; returns the FPS."""
    from lipnet_pl.io_video import VideoWriter, read_frames

    dest = output / rel.parent / f"{rel.stem}_overlay.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    seen: set[int] = set()
    frames = 0
    model_time = 0.0
    start = time.perf_counter()
    reader = read_frames(path, max_frames=max_frames)
    info = next(reader)  # (fps, total frame count or None)
    with VideoWriter(dest, fps=info.fps, codec=codec) as writer, _progress() as progress:
        task = progress.add_task(f"video {path.name}", total=info.frames)
        batch: list[np.ndarray] = []

        def flush() -> None:
            nonlocal frames, model_time
            t0 = time.perf_counter()
            labels = predictor.predict(batch)
            if predictor.device.type == "cuda":
                torch.cuda.synchronize(predictor.device)
            model_time += time.perf_counter() - t0
            for frame, label in zip(batch, labels, strict=True):
                seen.update(int(c) for c in np.unique(label))
                writer.write(overlay(frame, label, predictor.classes.palette, alpha=alpha))
            frames += len(batch)
            progress.advance(task, len(batch))
            batch.clear()

        for frame in reader:
            batch.append(frame)
            if len(batch) == batch_size:
                flush()
        if batch:
            flush()
    if frames == 0:
        raise ValueError("the video has no decodable frames")
    total = time.perf_counter() - start
    legend_path = output / rel.parent / f"{rel.stem}_legend.png"
    Image.fromarray(legend(sorted(seen), predictor.classes)).save(legend_path)
    fps = frames / total
    console.print(
        f"{path.name}: {frames} frames -> {dest} | {fps:.1f} FPS end to end "
        f"(decode + predict + encode), {frames / model_time:.1f} FPS model only"
    )
    report.frames += frames
    report.video_fps[str(path)] = fps
    return fps


def load_for_prediction(cfg: DictConfig) -> LoadedModel:
    """The checkpoint's model, or random weights when (and only when) explicitly allowed."""
    if cfg.get("ckpt_path"):
        return load_model_from_checkpoint(cfg.ckpt_path)
    if not cfg.get("allow_random_weights", False):
        raise ValueError(
            "no checkpoint given: pass ckpt_path=<run dir>/checkpoints/last.ckpt, or "
            "allow_random_weights=true to run an UNTRAINED network with random weights "
            "(its predictions are meaningless; only for smoke tests and timing)"
        )
    from lipnet_pl.models import build_model

    net_cfg = OmegaConf.to_container(cfg.net, resolve=True)
    console.print(
        f"[bold yellow]WARNING: allow_random_weights=true: using RANDOM weights for "
        f"{net_cfg}; the predictions are meaningless.[/bold yellow]"
    )
    net = build_model(**net_cfg).eval()
    size = cfg.get("input_size") or (473, 473)
    classes = ClassInfo.from_config({"num_classes": net_cfg.get("num_classes", 20)})
    return LoadedModel(
        net, classes, (int(size[0]), int(size[1])), IMAGENET_MEAN, IMAGENET_STD, {"net": net_cfg}
    )


def _default_output() -> Path:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir) / "predictions"
    except Exception:  # called without @hydra.main (tests, notebooks)
        return Path("outputs/predict")


def run(cfg: DictConfig) -> PredictReport:
    """Predict every input of ``cfg`` (see conf/predict.yaml); returns what was done."""
    if cfg.get("input") in (None, "", "???"):
        raise ValueError("input= is required: an image, a folder of images, or a video file")
    if int(cfg.batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    inputs = list(cfg.input) if isinstance(cfg.input, ListConfig | list | tuple) else [cfg.input]
    output = Path(cfg.output) if cfg.get("output") else _default_output()
    loaded = load_for_prediction(cfg)
    predictor = Predictor(
        loaded,
        device=cfg.device,
        flip=bool(cfg.tta.flip),
        fast=bool(cfg.fast),
        compile=bool(cfg.get("compile", False)),
    )
    console.print(
        f"model {loaded.hparams.get('net', {}).get('name', type(loaded.net).__name__)} on "
        f"{predictor.device} | input size {predictor.input_size} | flip TTA {bool(cfg.tta.flip)} | "
        f"fast path {bool(cfg.fast)} | torch threads {torch.get_num_threads()}"
    )
    report = PredictReport()
    files = collect_inputs(inputs, report)
    images = [(p, r) for p, r in files if p.suffix.lower() in IMAGE_EXTENSIONS]
    videos = [(p, r) for p, r in files if p.suffix.lower() in VIDEO_EXTENSIONS]
    save = OmegaConf.to_container(cfg.save, resolve=True) if cfg.get("save") else {}
    if images:
        predict_images(
            predictor, images, output, report, int(cfg.batch_size), save, float(cfg.overlay_alpha)
        )
    for path, rel in videos:
        try:
            predict_video(
                predictor,
                path,
                rel,
                output,
                report,
                int(cfg.batch_size),
                float(cfg.overlay_alpha),
                codec=str(cfg.video.codec),
                max_frames=cfg.video.get("max_frames"),
            )
            report.videos += 1
        except Exception as err:  # corrupt container, unsupported codec
            report.fail(path, f"cannot process video ({type(err).__name__}: {err})")
    console.print(
        f"done: {report.images} images, {report.videos} videos ({report.frames} frames) -> {output}; "
        f"{len(report.failed)} failed"
    )
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    report = run(cfg)
    if report.succeeded == 0:
        raise SystemExit(
            f"nothing was predicted: all {len(report.failed)} inputs failed (see above)"
        )


if __name__ == "__main__":
    main()
