"""OpenVINO as bench rows next to ONNX Runtime: fp32, and int8 through NNCF post-training
quantization.

Both start from the bench's fp32 ONNX file (batch norm folded, the file the ONNX Runtime rows
run), reshaped to the group's static input shape and compiled for the CPU plugin with the latency
hint, the torch thread count and fp32 inference precision (on CPUs with bf16 the plugin may
otherwise run an "fp32" model in bf16). int8 is ``nncf.quantize`` (default preset: int8 weights
and activations, the plugin's VNNI kernels) calibrated on the same inputs as the ONNX Runtime
int8 file. Needs ``pip install 'lipnet_pl[openvino]'``; without it, or on a CPU where the plugin
fails, the row says so and the bench goes on.

When OpenVINO is the faster int8 runtime: ``backend=openvino`` in eval/predict
(:mod:`lipnet_pl.core.openvino_runtime`) runs the exported int8 file. It beat ONNX Runtime int8
by >= 1.2x with int8 within 0.5 mIoU of fp32 on a 2-core Xeon with AMX (1.3x lipnet_rt, 2.6x
LIP-Net), but ran at 0.79-1.17x ONNX Runtime int8 on AMD EPYCs (Zen 2 and Zen 4), where
``onnxruntime`` stays the choice: docs/benchmarks.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from lipnet_pl.core.openvino_runtime import EXTRA, cpu_config, import_openvino


def _nncf():
    # NNCF sends usage telemetry unless one of these is set (nncf/telemetry/wrapper.py): nothing
    # of ours reaches the network at run time
    os.environ.setdefault("NNCF_CI", "1")
    try:
        import nncf
    except ImportError as err:
        raise RuntimeError(f"nncf is not installed: {EXTRA}") from err
    return nncf


def compile_openvino(
    onnx_path: str | Path,
    shape: Sequence[int],
    calibration: Sequence[np.ndarray] | None = None,
    threads: int | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``onnx_path`` compiled by OpenVINO's CPU plugin for inputs of ``shape``: fp32, or int8
    (NNCF) calibrated on ``calibration`` (float32 [B, C, H, W] arrays of one shape; H, W those
    of ``shape``). Returns ``x -> logits``."""
    ov = import_openvino()
    core = ov.Core()
    model = core.read_model(str(onnx_path))
    if calibration is not None:
        nncf = _nncf()
        batches = list(calibration)
        model.reshape(list(batches[0].shape))
        model = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))
    model.reshape(list(shape))  # static: the plugin plans its memory once
    request = core.compile_model(model, "CPU", cpu_config(threads)).create_infer_request()

    def run(x: torch.Tensor) -> torch.Tensor:
        out = request.infer({0: x.detach().cpu().numpy()}, share_inputs=True)
        return torch.from_numpy(np.asarray(out[0]))

    return run


def lazy_openvino(
    onnx_path: Path, example: torch.Tensor, calibration: Sequence[np.ndarray] | None = None
) -> Callable[[], torch.Tensor]:
    """A zero-argument call running the compiled network on ``example``; reading, quantizing and
    compiling happen in the first call (the bench's warm-up), so a failure (openvino missing, a
    plugin error on this CPU) lands in that variant's row."""
    net: list = []

    def call():
        if not net:
            net.append(compile_openvino(onnx_path, tuple(example.shape), calibration))
        return net[0](example)

    return call
