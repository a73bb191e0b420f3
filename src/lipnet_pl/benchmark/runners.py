"""One benchmark case each: PyTorch inference, ONNX Runtime inference, a PyTorch training step.

Every runner returns a :class:`Result` built by :func:`make_result`, the one place a table row
is made.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lipnet_pl.benchmark.timing import PeakMemory, percentile, time_calls
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ModelInfo:
    label: str
    params_m: float
    gflops: float


@dataclass
class Result:
    """One measured case (a row of the tables)."""

    model: str
    kind: str  # inference | train
    backend: str  # pytorch | onnxruntime
    # eager | fast | fast+compile | fast+cudagraphs | fp32 | int8 | train | train+channels_last
    variant: str
    dtype: str
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    peak_mem_mib: float | None
    mem_kind: str
    params_m: float
    gflops: float

    @property
    def label(self) -> str:
        """How the best-backend line names this case, e.g. ``onnxruntime int8``."""
        if self.backend == "pytorch":
            return f"PyTorch {self.variant} {self.dtype}"
        return f"onnxruntime {self.variant}"


@dataclass(frozen=True)
class Case:
    """What one measurement runs: model, device, dtype, batch, input size and repetitions."""

    info: ModelInfo
    device: torch.device
    dtype: str
    batch: int
    size: tuple[int, int]
    warmup: int
    repeats: int


def make_result(case: Case, kind: str, backend: str, variant: str, times, mem) -> Result:
    """The one place a table row is made."""
    median = statistics.median(times)
    return Result(
        case.info.label,
        kind,
        backend,
        variant,
        case.dtype,
        case.batch,
        median,
        percentile(times, 0.9),
        case.batch * 1e3 / median,
        mem.mib,
        mem.kind,
        case.info.params_m,
        case.info.gflops,
    )


def autocast(device: torch.device, dtype_name: str):
    dtype = DTYPES[dtype_name]
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def inference_call(net: nn.Module, x: torch.Tensor, device, dtype="fp32", cudagraphs=False):
    """One inference call; with CUDA graphs each call starts a new replay step."""
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    with torch.inference_mode(), autocast(device, dtype):
        return net(x)


def torch_inference(case: Case, variant: str, net: nn.Module, cudagraphs: bool = False) -> Result:
    x = torch.randn(case.batch, 3, *case.size, device=case.device)
    with PeakMemory(case.device) as mem:
        times = time_calls(
            lambda: inference_call(net, x, case.device, case.dtype, cudagraphs),
            case.device,
            case.warmup,
            case.repeats,
        )
    return make_result(case, "inference", "pytorch", variant, times, mem)


def ort_inference(case: Case, variant: str, onnx_path: Path) -> Result:
    """ONNX Runtime (CPU provider; CUDA provider on GPU when installed) on a random batch."""
    net = OnnxRuntimeNet(onnx_path, device=str(case.device))
    x = torch.randn(case.batch, 3, *case.size)
    host = torch.device("cpu")
    with PeakMemory(host) as mem:
        times = time_calls(lambda: net(x), host, case.warmup, case.repeats)
    return make_result(case, "inference", "onnxruntime", variant, times, mem)


def _train_step(case: Case, model: nn.Module, num_classes: int, channels_last: bool):
    """A closure doing forward + cross-entropy + backward + SGD step on fixed random data."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(case.batch, 3, *case.size, device=case.device).contiguous(memory_format=fmt)
    y = torch.randint(0, num_classes, (case.batch, *case.size), device=case.device)

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(case.device, case.dtype):
            loss = F.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        opt.step()

    return step


def torch_train_steps(
    case: Case, model: nn.Module, num_classes: int, layouts: Sequence[bool] = (True,)
) -> list[Result]:
    """images/s of forward + cross-entropy + backward + SGD step on random data, one row per
    memory layout (True = channels_last, variant ``train+channels_last``; False = ``train``).

    With several layouts the steps alternate (one each, ``repeats`` times, after a warm-up
    round): all see the same machine load, so their ratio is channels_last's gain even on a
    busy machine. Each row's memory is the largest increase over its own steps."""
    nets = [model, *(copy.deepcopy(model) for _ in layouts[1:])]
    steps = [_train_step(case, net, num_classes, cl) for net, cl in zip(nets, layouts, strict=True)]
    times: list[list[float]] = [[] for _ in layouts]
    mems: list[list[PeakMemory]] = [[] for _ in layouts]
    for i in range(case.repeats + 1):
        for k, step in enumerate(steps):
            with PeakMemory(case.device) as mem:
                t = time_calls(step, case.device, 0, 1)
            if i:
                times[k] += t
                mems[k].append(mem)
    model.eval()
    return [
        make_result(
            case,
            "train",
            "pytorch",
            "train+channels_last" if cl else "train",
            times[k],
            max(mems[k], key=lambda m: m.mib or 0.0),
        )
        for k, cl in enumerate(layouts)
    ]
