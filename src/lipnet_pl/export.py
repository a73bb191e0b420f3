"""Export a trained network to ONNX or TorchScript, with batch norm folded, and check it.

    python -m lipnet_pl.export ckpt_path=<run>/checkpoints/last.ckpt format=onnx [dynamic=true] [output=model.onnx]

The exported model is compared with the PyTorch model (unfolded, eval mode) on a random
473x473 input: the max absolute difference of the logits is printed and the command fails
(exit status 1) above ``tolerance`` (1e-3). ONNX models are run with onnxruntime (install the
``export`` extra: ``pip install -e '.[export]'``); TorchScript models are reloaded with
``torch.jit.load``. ``dynamic=true`` makes batch, height and width free (otherwise they are fixed
to the check size) and adds a check at a second, different shape.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from rich.console import Console
from torch import nn

from lipnet_pl.checkpoint import load_model_from_checkpoint
from lipnet_pl.models.fastpath import count_batchnorm, fold_batchnorm

console = Console(soft_wrap=True)  # long paths stay on one greppable line
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
MIN_OPSET = 17


@dataclass
class ExportConfig:
    ckpt_path: str | None = None
    format: str = "onnx"  # onnx | torchscript
    output: str | None = None  # default: beside the checkpoint, <stem>.onnx / <stem>.torchscript.pt
    dynamic: bool = False  # free batch / height / width axes
    opset: int = 18
    check_size: list[int] = field(default_factory=lambda: [473, 473])
    tolerance: float = 1e-3
    seed: int = 0


class ExportParityError(RuntimeError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


def export_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, opset: int
) -> Path:
    """torch.export-based ONNX export (onnxscript), weights embedded in the single .onnx file."""
    if opset < MIN_OPSET:
        raise ValueError(f"opset={opset}: use an ONNX opset >= {MIN_OPSET}")
    dynamic_shapes = None
    if dynamic:
        free = torch.export.Dim.DYNAMIC
        dynamic_shapes = ({0: free, 2: free, 3: free},)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        opset_version=opset,
        dynamo=True,
        external_data=False,
        dynamic_shapes=dynamic_shapes,
    )
    return path


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Trace (sizes read from the input stay symbolic, so other shapes work when the model is
    shape-generic, which ``dynamic=true`` checks)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # TorchScript is deprecated (said in the docs)
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(path))
    return path


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """Logits of the exported file on ``x`` (onnxruntime CPU / reloaded TorchScript)."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise RuntimeError(
                "onnxruntime is not installed, so the ONNX model cannot be checked: "
                "pip install -e '.[export]'"
            ) from err
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return session.run(None, {name: x.numpy()})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return module(x).numpy()


def check_parity(
    reference: nn.Module, path: Path, fmt: str, shape: tuple[int, ...], seed: int = 0
) -> float:
    """Max abs difference between ``reference`` and the exported model on a random input."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = reference(x).numpy()
    got = run_exported(path, fmt, x)
    if got.shape != expected.shape:
        raise ExportParityError(
            f"exported model returns shape {got.shape}, PyTorch {expected.shape} (input {shape})"
        )
    return float(np.abs(got - expected).max())


def export(cfg: ExportConfig) -> tuple[Path, list[float]]:
    """Export ``cfg.ckpt_path``; returns the file and the max abs differences of each check."""
    if not cfg.ckpt_path:
        raise ValueError("ckpt_path= is required: the .ckpt of a lipnet_pl training run")
    if cfg.format not in FORMATS:
        raise ValueError(f"format={cfg.format!r} is not supported: use one of {sorted(FORMATS)}")
    if len(cfg.check_size) != 2 or min(cfg.check_size) < 1:
        raise ValueError(f"check_size must be [height, width], got {list(cfg.check_size)}")
    loaded = load_model_from_checkpoint(cfg.ckpt_path)
    reference = loaded.net.eval()
    folded = fold_batchnorm(reference)
    console.print(
        f"batch norm folded: {count_batchnorm(reference) - count_batchnorm(folded)} of "
        f"{count_batchnorm(reference)} layers"
    )
    ckpt = Path(cfg.ckpt_path)
    out = Path(cfg.output) if cfg.output else ckpt.with_name(ckpt.stem + FORMATS[cfg.format])
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = (int(s) for s in cfg.check_size)
    example = torch.randn(1, 3, h, w)
    if cfg.format == "onnx":
        export_onnx(folded, example, out, cfg.dynamic, int(cfg.opset))
    else:
        export_torchscript(folded, example, out)
    console.print(
        f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {'dynamic' if cfg.dynamic else 'static'} shapes)"
    )
    shapes = [(1, 3, h, w)]
    if cfg.dynamic:
        shapes.append((2, 3, max(32, h // 2 + 7), max(32, w // 2 + 21)))
    diffs = []
    for shape in shapes:
        diff = check_parity(reference, out, cfg.format, shape, cfg.seed)
        diffs.append(diff)
        verdict = "[green]ok[/green]" if diff <= cfg.tolerance else "[red]FAILED[/red]"
        console.print(
            f"parity {cfg.format} vs PyTorch on input {list(shape)}: max abs diff {diff:.3e} {verdict}"
        )
    if max(diffs) > cfg.tolerance:
        raise ExportParityError(
            f"{out}: exported model differs from PyTorch by {max(diffs):.3e} > tolerance {cfg.tolerance}"
        )
    return out, diffs


def parse_args(argv: list[str]) -> ExportConfig:
    """``key=value`` overrides (Hydra-style) onto :class:`ExportConfig`; unknown keys are errors."""
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ValueError(f"arguments must be key=value (e.g. format=onnx), got {bad}")
    base = OmegaConf.structured(ExportConfig)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(argv))
    except Exception as err:  # omegaconf names the key and the expected type
        raise ValueError(f"bad export option: {err}") from err
    return OmegaConf.to_object(merged)


def main(argv: list[str] | None = None) -> int:
    try:
        export(parse_args(sys.argv[1:] if argv is None else argv))
    except (ValueError, FileNotFoundError, ExportParityError, RuntimeError) as err:
        console.print(f"[red]export failed:[/red] {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
