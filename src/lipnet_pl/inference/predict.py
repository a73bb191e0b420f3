"""``predict(cfg)``: human parsing of images, folders, videos and live streams.

See :mod:`lipnet_pl.inference.files` for what is written per image; a video or stream gives
``<name>_overlay.mp4`` plus ``<name>_legend.png`` (every class seen), and the isolated model FPS
and end-to-end FPS are printed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from lipnet_pl.config import config_errors, plain
from lipnet_pl.core.backends import select_backend
from lipnet_pl.core.loader import LoadedModel, load_model, random_model
from lipnet_pl.core.predictor import Predictor
from lipnet_pl.core.spec import ModelSpec
from lipnet_pl.core.tta import tta_config
from lipnet_pl.core.viz import legend, overlay
from lipnet_pl.data.dataset import DataFileError, decode_image
from lipnet_pl.data.media import is_video
from lipnet_pl.errors import UserError
from lipnet_pl.inference.files import (
    PredictReport,
    collect_inputs,
    outputs_exist,
    over_pixel_limit,
    save_outputs,
)
from lipnet_pl.outputs import atomic_save, clean_stale_tree, writable_dir
from lipnet_pl.runtime import resolve_device

console = Console(soft_wrap=True)  # long paths stay on one greppable line


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def load_for_prediction(cfg: DictConfig, device: torch.device) -> LoadedModel:
    """The model of ``ckpt_path`` on ``device`` (an ONNX session too), or random weights when
    (and only when) explicitly allowed."""
    if cfg.get("ckpt_path"):
        return load_model(cfg.ckpt_path, device=device)
    if not cfg.get("allow_random_weights", False):
        raise UserError(
            "ckpt_path is required: pass ckpt_path=<run dir>/checkpoints/last.ckpt (or an .onnx "
            "file or a save_pretrained folder), or allow_random_weights=true to run an UNTRAINED "
            "network (meaningless output; smoke tests and timing only)"
        )
    spec = ModelSpec.from_dict(plain(cfg.random_model))
    console.print(
        f"[bold yellow]WARNING: allow_random_weights=true: RANDOM weights for {spec.net}; "
        "the predictions are meaningless.[/bold yellow]"
    )
    return random_model(spec)


def _batched(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_images(
    predictor: Predictor,
    files: Sequence[tuple[str, Path]],
    output: Path,
    report: PredictReport,
    batch_size: int,
    save: dict,
    alpha: float,
    max_pixels: int | None = None,
    skip_existing: bool = False,
) -> None:
    """Predict image files in batches, writing every output kind for each; an image over
    ``max_pixels`` is a failed input (the others go on)."""
    with progress_bar() as progress:
        task = progress.add_task("images", total=len(files))
        for chunk in _batched(list(files), batch_size):
            loaded = []
            for source, rel in chunk:
                if skip_existing and outputs_exist(output, rel, save):
                    report.skipped += 1
                    progress.advance(task)
                    continue
                too_big = over_pixel_limit(source, max_pixels)
                if too_big:
                    report.fail(source, too_big)
                    console.print(f"[red]skipped[/red] {source}: {too_big}")
                    progress.advance(task)
                    continue
                try:
                    loaded.append((rel, decode_image(source, exif=True)))
                except DataFileError as err:
                    report.fail(source, str(err))
                    console.print(f"[red]skipped[/red] {source}: {err}")
                    progress.advance(task)
            if not loaded:
                continue
            labels = predictor.predict([img for _, img in loaded])
            for (rel, img), label in zip(loaded, labels, strict=True):
                rgb = img.permute(1, 2, 0).numpy()
                save_outputs(output, rel, rgb, label, predictor.classes, save, alpha)
                report.images += 1
                progress.advance(task)


def predict_video(
    predictor: Predictor, source: str, rel: Path, output: Path, cfg: DictConfig
) -> dict[str, Any]:
    """Overlay every frame of a file or live source into ``<output>/<name>_overlay.mp4``, with
    decoding, parsing and encoding running concurrently (:mod:`lipnet_pl.inference.video`)."""
    # lazy: PyAV loads only for videos
    from lipnet_pl.inference.video import open_source, run_video, time_model

    video = cfg.video
    dest = output / rel.parent / f"{Path(rel).stem}_overlay.mp4"
    dest.parent.mkdir(parents=True, exist_ok=True)
    palette, alpha = predictor.classes.palette, float(cfg.overlay_alpha)
    src = open_source(source)
    isolated = time_model(predictor.predict, [src.blank_frame()] * int(video.batch_size), n=10)
    console.print(f"{source}: isolated model FPS: {isolated:.1f} (the network alone, 10 frames)")
    with progress_bar() as progress:
        task = progress.add_task(f"video {Path(rel).stem}", total=src.frames)
        stats = run_video(
            src,
            dest,
            predictor.predict,
            lambda frame, label: overlay(frame, label, palette, alpha=alpha),
            batch_size=int(video.batch_size),
            realtime=bool(video.realtime),
            max_frames=video.get("max_frames"),
            codec=str(video.codec),
            on_progress=lambda st: progress.update(task, completed=st.frames),
            reconnect=int(video.get("reconnect") or 0),
        )
    legend_path = output / rel.parent / f"{Path(rel).stem}_legend.png"
    image = Image.fromarray(legend(sorted(stats.classes_seen), predictor.classes))
    atomic_save(legend_path, lambda tmp: image.save(tmp, format="PNG"))
    console.print(
        f"{source}: {stats.frames} frames ({stats.dropped} dropped"
        f"{f', {stats.reconnects} reconnects' if stats.reconnects else ''}) -> {stats.output} | "
        f"isolated model FPS: {isolated:.1f} | end-to-end FPS: {stats.end_to_end_fps:.1f}"
    )
    if stats.interrupted:  # the file is finalised; stop like any Ctrl-C
        raise KeyboardInterrupt
    return {
        "stop_reason": stats.stop_reason,
        "reconnects": stats.reconnects,
        "frames": stats.frames,
        "dropped": stats.dropped,
        "end_to_end_fps": stats.end_to_end_fps,
        "model_fps_in_pipeline": stats.model_fps,
        "isolated_model_fps": isolated,
        "output": str(stats.output),
    }


def stopped_message(source: str, stats: dict[str, Any]) -> str:
    """One line for a live source that dropped or timed out: frames kept, why, what to try."""
    where = f"written to {stats['output']}" if stats["frames"] else "no output written"
    retried = f" after {stats['reconnects']} reconnects" if stats["reconnects"] else ""
    return (
        f"{source}: the stream stopped after {stats['frames']} frames ({where}): "
        f"{stats['stop_reason']}{retried}; video.reconnect=N reopens a dropped stream N times"
    )


def check_predict_config(cfg: DictConfig) -> None:
    """The values checked before anything loads: one line naming the key."""
    if cfg.get("input") in (None, "", "???"):
        raise UserError("input is required: an image, a folder, a video, a stream URL or a list")
    if int(cfg.batch_size) < 1:
        raise UserError(f"batch_size must be >= 1, got {cfg.batch_size}")
    frames = cfg.video.get("max_frames")
    if frames is not None and (not isinstance(frames, int) or frames < 1):
        raise UserError(f"video.max_frames must be >= 1 (or null: every frame), got {frames}")
    limit = cfg.get("max_pixels")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UserError(f"max_pixels must be a positive whole number (or null), got {limit}")


def predict(cfg: DictConfig) -> PredictReport:
    """Predict every input of ``cfg`` (see conf/predict.yaml); returns what was done."""
    check_predict_config(cfg)
    if cfg.get("num_threads"):
        torch.set_num_threads(int(cfg.num_threads))
    inputs = plain(cfg.input)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    if cfg.get("output"):
        output = writable_dir(cfg.output, "output")
    else:
        output = writable_dir(Path(cfg.paths.output_dir) / "predictions", "paths.output_dir")
    clean_stale_tree(output)  # temporaries of a run that was killed
    with config_errors("tta"):
        tta = tta_config(plain(cfg.tta))
    device = resolve_device(str(cfg.device))
    work = Path(cfg.paths.output_dir)
    loaded = select_backend(load_for_prediction(cfg, device), str(cfg.backend), device, work)
    predictor = Predictor(
        loaded, device=device, tta=tta, fast=bool(cfg.fast), compile=bool(cfg.get("compile"))
    )
    console.print(
        f"model {loaded.spec.name} ({loaded.format}) on {predictor.device} | input size "
        f"{predictor.input_size} | TTA {predictor.tta} | fast path {bool(cfg.fast)} | torch "
        f"threads {torch.get_num_threads()}"
    )
    report = PredictReport()
    runs = Path(cfg.paths.root_dir) / "outputs"  # every command's run dirs (hydra.run.dir)
    files = collect_inputs(inputs, report, exclude=[output, work, runs])
    for source, reason in report.failed:
        console.print(f"[red]skipped[/red] {source}: {reason}")
    if report.ignored:
        console.print(f"ignored {report.ignored} files that are neither images nor videos")
    for source, name in report.renamed:
        console.print(f"{source}: written as {name.with_suffix('')} (another input has its name)")
    images = [(s, r) for s, r in files if not is_video(Path(r))]
    videos = [(s, r) for s, r in files if is_video(Path(r))]
    save = plain(cfg.save) if cfg.get("save") else {}
    if images:
        predict_images(
            predictor,
            images,
            output,
            report,
            int(cfg.batch_size),
            save,
            float(cfg.overlay_alpha),
            max_pixels=cfg.get("max_pixels"),
            skip_existing=bool(cfg.get("skip_existing", False)),
        )
    for source, rel in videos:
        try:
            stats = predict_video(predictor, source, rel, output, cfg)
        except ValueError as err:  # unreadable container or stream, unsupported codec
            report.fail(source, str(err))
            console.print(f"[red]skipped[/red] {source}: {err}")
            continue
        report.videos += 1
        report.frames += stats["frames"]
        report.video_stats[source] = stats
        if stats["stop_reason"]:
            report.stopped.append(stopped_message(source, stats))
    console.print(
        f"done: {report.images} images"
        f"{f' ({report.skipped} skipped: outputs exist)' if report.skipped else ''}, "
        f"{report.videos} videos ({report.frames} frames) -> "
        f"{output}; {len(report.failed)} failed, {report.ignored} ignored (not images or videos)"
    )
    if report.stopped:  # the outputs are written; the run still failed
        raise UserError("; ".join(report.stopped))
    if report.succeeded == 0:
        raise UserError(
            f"nothing was predicted: all {len(report.failed)} inputs failed (see above); "
            "check input="
        )
    return report
