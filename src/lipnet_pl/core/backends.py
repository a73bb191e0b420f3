"""Which runtime executes a loaded model: PyTorch, ONNX Runtime or OpenVINO (``backend=`` in
eval/predict).

``auto`` runs each file where it belongs (``.onnx`` under ONNX Runtime, checkpoints and
``save_pretrained`` folders under PyTorch). ``onnxruntime`` or ``openvino`` with a PyTorch model
exports it first (batch norm folded, free batch/height/width, spec in the metadata) into the run
dir, so a checkpoint can be evaluated exactly as it will be deployed. ``openvino`` runs any
``.onnx`` (the int8 file of ``export quantize=int8`` included) on the CPU through OpenVINO
(``lipnet_pl[openvino]``): faster than ONNX Runtime int8 on Intel CPUs with AMX or VNNI,
not on the AMD EPYCs measured (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import torch

from lipnet_pl.core.loader import LoadedModel
from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet, write_spec
from lipnet_pl.core.openvino_runtime import OpenVinoNet, import_openvino
from lipnet_pl.errors import UserError
from lipnet_pl.models.fastpath import fold_batchnorm

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")


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
    if backend == "auto" or (backend == "onnxruntime" and loaded.format == "onnx"):
        return loaded
    if backend == "torch":
        if loaded.format != "onnx":
            return loaded
        raise UserError(
            f"backend=torch cannot run the ONNX file {loaded.source}: pass the training .ckpt or a "
            "save_pretrained folder, or use backend=onnxruntime"
        )
    if backend == "openvino":  # before the export: a refusal costs no export
        _check_openvino(device)
    path = Path(loaded.source)
    if loaded.format != "onnx":
        path = to_onnx(loaded, Path(work_dir) / "model.onnx")
    if backend == "onnxruntime":
        return LoadedModel(OnnxRuntimeNet(path, device=str(device)), loaded.spec, str(path), "onnx")
    return LoadedModel(OpenVinoNet(path), loaded.spec, str(path), "onnx")


def _check_openvino(device: str | torch.device) -> None:
    """One line when ``backend=openvino`` cannot run here: a GPU device, or no openvino."""
    if torch.device(device).type != "cpu":
        raise UserError(
            f"backend=openvino runs on the CPU, not {device}: set device=cpu (predict) or "
            "trainer=cpu (eval), or use backend=onnxruntime"
        )
    try:
        import_openvino()
    except RuntimeError as err:  # openvino not installed
        raise UserError(f"backend=openvino: {err}") from None
