"""The file writers of export: a network to ONNX or TorchScript, and the parity check of an
exported file against PyTorch. Plain arguments only (no config): the ``export`` command's layer
(:mod:`lipnet_pl.exporting`) decides what to write where, the bench and the backends call these
directly."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipnet_pl.errors import UserError


class ExportParityError(UserError):
    """The exported model's outputs differ from PyTorch's by more than the tolerance."""


def export_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, dynamic: bool, opset: int
) -> Path:
    """torch.export-based ONNX export (onnxscript), weights embedded in the single .onnx file."""
    dynamic_shapes = None
    if dynamic:
        free = torch.export.Dim.DYNAMIC
        dynamic_shapes = ({0: free, 2: free, 3: free},)
        if example.shape[0] == 1:  # torch < 2.10 would fix a batch of 1 (0/1 specialisation)
            example = example.repeat(2, 1, 1, 1)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        opset_version=opset,
        dynamo=True,
        external_data=False,
        verbose=False,  # no "[torch.onnx] ..." progress lines
        dynamic_shapes=dynamic_shapes,
    )
    if written_opset(path) != int(opset):
        raise UserError(
            f"opset={opset}: the exporter could not convert the model to it and wrote opset "
            f"{written_opset(path)} instead: pass opset={written_opset(path)}"
        )
    return path


def max_opset() -> int:
    import onnx

    return int(onnx.defs.onnx_opset_version())


def written_opset(path: Path) -> int:
    """The default-domain opset an ONNX file declares (the exporter may fall back silently)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx"))


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Trace (sizes read from the input stay symbolic, so other shapes work when the model is
    shape-generic, which ``dynamic=true`` checks)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", FutureWarning
        )  # TorchScript is deprecated (said in the docs)
        traced = torch.jit.trace(net, example, check_trace=False)
        # in memory first, then one write: torch.jit.save aborts the process on a full disk
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())
    return path


def run_exported(path: Path, fmt: str, x: torch.Tensor) -> np.ndarray:
    """Logits of the exported file on ``x`` (onnxruntime CPU / reloaded TorchScript)."""
    if fmt == "onnx":
        import onnxruntime as ort

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
