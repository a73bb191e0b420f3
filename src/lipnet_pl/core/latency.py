"""A network's CPU latency at batch 1, the short way: what a sweep job records next to its mIoU.

The network runs as ``make bench`` runs its fastest CPU rows for LIP-Net and lipnet_rt: batch
norm folded, exported to ONNX, under ONNX Runtime in fp32 and in static int8 (QDQ, the
int8-friendly graph of ``export quantize=int8``). Both sessions are warmed up, then timed in
interleaved rounds (one call each per round, :func:`~lipnet_pl.core.timing.interleaved_rounds`)
for at most ``time_cap_s``; the faster median is the latency. int8 is calibrated with min/max
ranges on one random input: calibration values do not change the speed (docs/benchmarks.md),
and entropy calibration would take longer than the timing. Always on the CPU, whatever device
trained the network, with torch's thread count (a sweep job's share of the cores).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet
from lipnet_pl.core.quantize import quantize_onnx_int8
from lipnet_pl.core.timing import interleaved_rounds, median_ci, time_calls
from lipnet_pl.models.fastpath import fold_batchnorm

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Latency:
    ms: float  # median of the faster backend, batch 1
    backend: str  # "onnxruntime int8" | "onnxruntime fp32"
    rounds: int
    others: dict[str, float]  # every backend timed -> its median (ms)


def cpu_latency(
    net: nn.Module, size: tuple[int, int], time_cap_s: float = 3.0, warmup: int = 2
) -> Latency:
    """``net``'s batch-1 latency at ``size`` (H, W) on the fastest of ONNX Runtime fp32 / int8."""
    folded = fold_batchnorm(net).cpu()  # a copy: ``net`` stays where and as it is
    example = torch.randn(1, 3, *size)
    with tempfile.TemporaryDirectory(prefix="lipnet_latency_") as tmp:
        fp32 = export_onnx(folded, example, Path(tmp) / "net.onnx", False, 18)
        int8 = quantize_onnx_int8(fp32, Path(tmp) / "net.int8.onnx", [example], method="minmax")
        sessions = {
            f"onnxruntime {name}": OnnxRuntimeNet(path, device="cpu", spinning=False)
            for name, path in (("fp32", fp32), ("int8", int8))
        }
    calls = {name: (lambda s=s: s(example)) for name, s in sessions.items()}
    for call in calls.values():
        time_calls(call, CPU, warmup, 0)
    rounds = interleaved_rounds(calls, CPU, 3, 1000, 0.05, time_cap_s)
    medians = {name: median_ci(times)[0] for name, times in rounds.times.items()}
    best = min(medians, key=medians.__getitem__)
    return Latency(medians[best], best, len(rounds.times[best]), medians)
