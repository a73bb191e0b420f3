"""``python -m lipnet_pl.export``: export a saved model to ONNX, TorchScript or a
``save_pretrained`` folder, and check it (conf/export.yaml).

    python -m lipnet_pl.export ckpt_path=<run>/checkpoints/last.ckpt format=onnx [dynamic=true]

Batch norm is folded into the convolutions first. The exported model is compared with the
PyTorch model (unfolded, eval mode) on a random input at the model's input size (and, with
``dynamic=true``, at a second shape): the max absolute difference of the logits is printed and
the command fails above ``tolerance``. ONNX files carry the model's spec (classes, input size,
normalisation, network config) in their metadata, so ``eval`` and ``predict`` take them as
``ckpt_path=model.onnx``. ``quantize=int8`` adds a statically quantised copy calibrated on
``calibration.images`` training images of ``calibration.data_root``.

This is the command's layer (config checks, output paths, console); the file writers and the
parity check it calls live in :mod:`lipnet_pl.core.model_export` and
:mod:`lipnet_pl.core.quantize`, which take plain arguments.
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console
from torch import nn

from lipnet_pl.config import plain
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.model_export import (
    ExportParityError,
    check_parity,
    export_onnx,
    export_torchscript,
    max_opset,
)
from lipnet_pl.core.onnx_runtime import write_spec
from lipnet_pl.core.pretrained import save_pretrained
from lipnet_pl.core.quantize import calibration_batches, quantize_onnx_int8
from lipnet_pl.data.layout import find_layout
from lipnet_pl.errors import UserError
from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm
from lipnet_pl.outputs import atomic_path, writable_dir, writable_file

console = Console(soft_wrap=True)  # long paths stay on one greppable line
EXPORT_SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "pretrained": "_pretrained"}
MIN_OPSET = 17


def check_export_config(cfg: DictConfig) -> None:
    if cfg.format not in EXPORT_SUFFIXES:
        raise UserError(
            f"format={cfg.format!r} is not supported: use one of {sorted(EXPORT_SUFFIXES)}"
        )
    if cfg.get("quantize") not in (None, "none", "int8"):
        raise UserError(f"quantize={cfg.quantize!r}: use quantize=int8 or leave it out")
    if cfg.get("quantize") == "int8" and cfg.format != "onnx":
        raise UserError("quantize=int8 needs format=onnx")
    if cfg.get("quantize") == "int8":
        check_calibration_root(cfg.calibration.get("data_root"))
    if not MIN_OPSET <= int(cfg.opset) <= max_opset():
        raise UserError(
            f"opset={cfg.opset}: use an ONNX opset from {MIN_OPSET} to {max_opset()} (the "
            "newest this onnx knows)"
        )
    if float(cfg.tolerance) <= 0:
        raise UserError(f"tolerance must be > 0, got {cfg.tolerance}")


def check_calibration_root(root) -> None:
    """int8 calibration reads train images: the root must have them (checked before exporting)."""
    if not root:
        raise UserError(
            "quantize=int8 needs calibration.data_root=<LIP-format root> (train images)"
        )
    try:
        layout = find_layout(root, key="calibration.data_root")
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise UserError(str(err)) from None
    if "train" not in layout or not layout["train"].ids:
        raise UserError(f"calibration.data_root={root} has no train split (train_images/)")


def output_path(cfg: DictConfig, source: Path) -> Path:
    """``output=`` or, by default, beside the source: ``<stem>.onnx`` etc.; checked writable."""
    if cfg.get("output"):
        out, key = Path(cfg.output), "output"
    else:
        out, key = source.with_name(source.stem + EXPORT_SUFFIXES[cfg.format]), "output (default)"
    return writable_dir(out, key) if cfg.format == "pretrained" else writable_file(out, key)


def export(cfg: DictConfig) -> tuple[Path, list[float]]:
    """Export ``cfg.ckpt_path``; returns the file and the max abs difference of each check."""
    check_export_config(cfg)
    if cfg.get("output"):  # before the checkpoint is read: a bad output= fails at once
        output_path(cfg, Path(cfg.output))
    loaded = load_model(cfg.ckpt_path)
    if loaded.format == "onnx":
        raise UserError(f"ckpt_path={cfg.ckpt_path} is already ONNX: export a .ckpt instead")
    out = output_path(cfg, Path(loaded.source))
    if cfg.format == "pretrained":
        save_pretrained(loaded.net, loaded.spec, out)
        console.print(f"wrote {out} (safetensors + config.json)")
        return out, []
    reference = loaded.net.eval()
    folded = fold_batchnorm(reference)
    n_bn = count_batchnorm(reference)
    console.print(f"batch norm folded: {n_bn - count_batchnorm(folded)} of {n_bn} layers")
    h, w = loaded.spec.input_size
    example = torch.randn(1, 3, h, w)
    # write beside the target, check, then rename: a failed export never replaces a good file
    with atomic_path(out) as partial:
        if cfg.format == "onnx":
            export_onnx(folded, example, partial, bool(cfg.dynamic), int(cfg.opset))
            write_spec(partial, loaded.spec)
        else:
            export_torchscript(folded, example, partial)
        diffs = check_all(reference, partial, cfg, resolve_check_size(cfg, loaded.spec.input_size))
    kind = "dynamic" if cfg.dynamic else "static"
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {kind} shapes)")
    if cfg.get("quantize") == "int8":
        quantize(out, loaded.spec, cfg)
    return out, diffs


def check_all(
    reference: nn.Module, out: Path, cfg: DictConfig, size: tuple[int, int]
) -> list[float]:
    """Parity at ``size`` (and a second shape when dynamic); raises above tolerance."""
    h, w = size
    shapes = [(1, 3, h, w)]
    if cfg.dynamic:
        shapes.append((2, 3, max(32, h // 2 + 7), max(32, w // 2 + 21)))
    diffs = []
    for shape in shapes:
        diff = check_parity(reference, out, cfg.format, shape, int(cfg.seed))
        diffs.append(diff)
        verdict = "[green]ok[/green]" if diff <= cfg.tolerance else "[red]FAILED[/red]"
        console.print(
            f"parity {cfg.format} vs PyTorch on input {list(shape)}: max abs diff {diff:.3e} "
            f"{verdict}"
        )
    if max(diffs) > cfg.tolerance:
        raise ExportParityError(
            f"{out}: exported model differs from PyTorch by {max(diffs):.3e} > tolerance "
            f"{cfg.tolerance}"
        )
    return diffs


def resolve_check_size(cfg: DictConfig, default: tuple[int, int]) -> tuple[int, int]:
    """``check_size=[H, W]`` or the model's input size."""
    size = plain(cfg.get("check_size"))
    if not size:
        return default
    if len(size) != 2 or min(int(s) for s in size) < 1:
        raise UserError(f"check_size must be [height, width], got {size}")
    if not cfg.get("dynamic") and [int(s) for s in size] != list(default):
        raise UserError(
            f"check_size={list(size)}: a static export (dynamic=false) takes only the model's "
            f"input size {list(default)}; pass dynamic=true to check it at another size"
        )
    return int(size[0]), int(size[1])


def quantize(fp32: Path, spec, cfg: DictConfig) -> Path:
    """int8 copy of an exported ONNX file, calibrated on training images of a data root."""
    calib = cfg.calibration
    out = fp32.with_name(fp32.stem + ".int8.onnx")
    batches = calibration_batches(
        calib.data_root, int(calib.images), spec.input_size, spec.mean, spec.std
    )
    quantize_onnx_int8(fp32, out, batches)
    console.print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, int8)")
    return out
