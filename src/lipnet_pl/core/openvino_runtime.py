"""OpenVINO's CPU runtime as a drop-in torch network (``backend=openvino`` in eval/predict).

:class:`OpenVinoNet` runs an exported ``.onnx`` file, fp32 or the int8 (QDQ) file of
``export quantize=int8``, through OpenVINO's CPU plugin: its low-precision transformations turn
the QDQ pairs into int8 kernels (AMX / VNNI where the CPU has them). On a 2-core Xeon with
AMX-INT8 it ran the int8 files 1.23x (lipnet_rt) and 2.2x (LIP-Net) faster than ONNX Runtime;
on AMD EPYC (Zen 2 / Zen 4) it did not beat ONNX Runtime (docs/benchmarks.md), which stays the
``onnxruntime`` default. Each input shape is compiled once (static shapes: the plugin plans its
memory); needs ``pip install 'lipnet_pl[openvino]'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from lipnet_pl.core.onnx_runtime import SPEC_KEY, in_chunks, read_metadata, read_spec
from lipnet_pl.core.spec import ModelSpec

EXTRA = "pip install 'lipnet_pl[openvino]' (openvino, nncf)"
MAX_SHAPES = 8  # compiled shapes kept (predict resizes to one size; eval batches to one or two)


def import_openvino():
    """The ``openvino`` module, or a ``RuntimeError`` saying how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise RuntimeError(f"openvino is not installed: {EXTRA}") from err
    return openvino


def cpu_config(threads: int | None = None) -> dict:
    """The CPU plugin settings of every OpenVINO run here: the latency hint, torch's thread
    count, and fp32 for the layers that are not int8 (on CPUs with bf16 or AMX the plugin would
    otherwise run an "fp32" model in bf16)."""
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": "f32",
    }


class OpenVinoNet(nn.Module):
    """An ONNX model under OpenVINO's CPU plugin behind the ``nn.Module`` interface.

    ``forward(x)`` takes float images [B, C, H, W] and returns float32 logits on ``x``'s device
    (the network runs on the CPU). Inference only, no autograd. As with
    :class:`~lipnet_pl.core.onnx_runtime.OnnxRuntimeNet`, a static C, H, W must match and a
    static batch size other than the input's is served in chunks.

    Args:
        path: the ``.onnx`` file (its lipnet_pl spec, when present, is ``self.spec``).
        threads: inference threads; default ``torch.get_num_threads()``.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        super().__init__()
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.path = Path(path)
        self.threads = threads
        self.device = torch.device("cpu")
        meta = read_metadata(self.path)  # FileNotFoundError / ValueError before OpenVINO runs
        self.spec: ModelSpec | None = read_spec(self.path) if SPEC_KEY in meta else None
        self._start()

    def _start(self) -> None:
        ov = import_openvino()
        self._core = ov.Core()
        try:
            self._model = self._core.read_model(str(self.path))
        except Exception as err:  # OpenVINO's frontend errors
            raise ValueError(f"OpenVINO cannot read {self.path}: {err}") from None
        if len(self._model.inputs) != 1:
            raise ValueError(
                f"{self.path} has {len(self._model.inputs)} inputs; one image input expected"
            )
        shape = self._model.input(0).get_partial_shape()
        if shape.rank.is_dynamic or shape.rank.get_length() != 4:
            raise ValueError(f"{self.path}: the input is not [B, C, H, W]: {shape}")
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        self._requests: dict[tuple[int, ...], object] = {}

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_core", "_model", "_requests"):
            state.pop(key, None)  # not picklable: rebuilt on load (deepcopy, spawn workers)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._start()

    def _request(self, shape: tuple[int, ...]):
        """The infer request compiled for ``shape`` (compiled on first use)."""
        if shape not in self._requests:
            if len(self._requests) >= MAX_SHAPES:
                self._requests.pop(next(iter(self._requests)))
            model = self._model.clone()
            model.reshape(list(shape))
            compiled = self._core.compile_model(model, "CPU", cpu_config(self.threads))
            self._requests[shape] = compiled.create_infer_request()
        return self._requests[shape]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[0] < 1:
            raise ValueError(f"OpenVinoNet expects [B, C, H, W] images, got {list(x.shape)}")
        for axis, want in enumerate(self.input_shape[1:], start=1):
            if want is not None and x.shape[axis] != want:
                expected = "x".join("?" if d is None else str(d) for d in self.input_shape)
                raise ValueError(
                    f"{self.path} was exported for fixed input {expected}, got {list(x.shape)}: "
                    "resize the input or re-export with dynamic=true"
                )
        x_device = x.device
        x = x.detach().to("cpu", torch.float32).contiguous()
        return in_chunks(x, self.input_shape[0], self._run).to(x_device)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        array = x.numpy()
        out = self._request(tuple(array.shape)).infer({0: array}, share_inputs=True)
        return torch.from_numpy(np.asarray(out[0]))

    def extra_repr(self) -> str:
        shape = "x".join("?" if d is None else str(d) for d in self.input_shape)
        return f"path={str(self.path)!r}, input={shape}, runtime=OpenVINO CPU"
