"""Which runtime executes a loaded model: PyTorch or ONNX Runtime (``backend=`` in eval/predict).

``auto`` runs each file where it belongs (``.onnx`` under ONNX Runtime, checkpoints and
``save_pretrained`` folders under PyTorch). ``onnxruntime`` with a PyTorch model exports it first
(batch norm folded, free batch/height/width, spec in the metadata) into the run dir, so a
checkpoint can be evaluated exactly as it will be deployed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lipnet_pl.core.loader import LoadedModel
from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet, write_spec
from lipnet_pl.errors import UserError
from lipnet_pl.models.fastpath import fold_batchnorm

BACKENDS = ("auto", "torch", "onnxruntime")


def to_onnx(loaded: LoadedModel, path: Path) -> Path:
    """Export a PyTorch model for ONNX Runtime (folded BN, dynamic axes, spec in metadata)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 3, *loaded.spec.input_size)
    export_onnx(fold_batchnorm(loaded.net.cpu()), example, path, dynamic=True, opset=18)
    return write_spec(path, loaded.spec)


def select_backend(
    loaded: LoadedModel, backend: str, device: str | torch.device, work_dir: Path
) -> LoadedModel:
    """``loaded`` on the runtime ``backend`` names (see module docstring)."""
    if backend not in BACKENDS:
        raise UserError(f"backend={backend!r} is not a backend: use one of {list(BACKENDS)}")
    if backend == "auto" or (backend == "onnxruntime") == (loaded.format == "onnx"):
        return loaded
    if backend == "torch":
        raise UserError(
            f"backend=torch cannot run the ONNX file {loaded.source}: pass the training .ckpt or a "
            "save_pretrained folder, or use backend=onnxruntime"
        )
    path = to_onnx(loaded, Path(work_dir) / "model.onnx")
    net = OnnxRuntimeNet(path, device=str(device))
    return LoadedModel(net, loaded.spec, str(path), "onnx")
