"""Benchmark cases: inference variants (PyTorch, ONNX Runtime, OpenVINO) measured as a group in
interleaved rounds, and PyTorch training steps.

Every row is a :class:`Result` built by :func:`make_result`, the one place a table row is made.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from lipnet_pl.core.timing import (
    PeakMemory,
    interleaved_rounds,
    median_ci,
    paired_ratio,
    percentile,
    time_calls,
)

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
    backend: str  # pytorch | onnxruntime | openvino
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
    ci_low_ms: float = math.nan  # 95 % interval of the median (order statistics)
    ci_high_ms: float = math.nan
    rounds: int = 0
    device: str = "cpu"  # where it ran: an ONNX Runtime session's provider, not what was asked
    note: str = ""  # OOM | error: ... | CI wider than +-5 % (time cap) | ...
    round_ms: list[float] = field(default_factory=list, repr=False)  # per interleaved round

    @property
    def ok(self) -> bool:
        return not self.note.startswith(("OOM", "error"))

    @property
    def label(self) -> str:
        """How the best-backend line names this case, e.g. ``onnxruntime int8``."""
        if self.backend == "pytorch":
            return f"PyTorch {self.variant} {self.dtype}"
        return f"{self.backend} {self.variant} {self.device.upper()}"


@dataclass(frozen=True)
class RoundSettings:
    """When interleaved rounds stop (:func:`~lipnet_pl.core.timing.interleaved_rounds`)."""

    min_rounds: int
    max_rounds: int
    tolerance: float
    time_cap_s: float


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


def make_result(case: Case, kind: str, backend: str, variant: str, times, mem, **extra) -> Result:
    """The one place a table row is made (``extra``: CI, rounds, device, note)."""
    median, low, high = median_ci(times) if times else (math.nan,) * 3
    return Result(
        case.info.label,
        kind,
        backend,
        variant,
        case.dtype,
        case.batch,
        median,
        percentile(times, 0.9) if times else math.nan,
        case.batch * 1e3 / median,
        None if mem is None else mem.mib,
        "" if mem is None else mem.kind,
        case.info.params_m,
        case.info.gflops,
        **{"ci_low_ms": low, "ci_high_ms": high, "device": case.device.type, **extra},
    )


def failure(err: BaseException) -> str:
    """The note of a case that could not run: ``OOM`` or ``error: <type>: <first line>``."""
    if isinstance(err, torch.OutOfMemoryError):
        return "OOM"
    text = (str(err).strip().splitlines() or [""])[0]
    return f"error: {type(err).__name__}: {text}"[:160]


@dataclass
class Variant:
    """One way of running a model in a measurement group: a zero-argument call."""

    backend: str  # pytorch | onnxruntime | openvino
    variant: str
    call: Callable[[], object]
    device: torch.device  # where it runs (and where its memory is measured)
    dtype: str | None = None  # the row's dtype when not the group's (int8 PyTorch rows)


def measure_group(case: Case, variants: dict[str, Variant], rounds: RoundSettings) -> list[Result]:
    """Warm every variant up, take one call's peak memory each, then time them in interleaved
    rounds (:func:`interleaved_rounds`). A variant that fails (OOM, compile error, recompile
    limit) becomes a row with that note; the others go on."""
    rows, live, mems = [], {}, {}
    for name, v in variants.items():
        try:
            time_calls(v.call, v.device, case.warmup, 0)
            # steady state: after the warm-up. ONNX Runtime's CUDA arena is not torch's:
            # no figure rather than a wrong one
            ort_cuda = v.backend == "onnxruntime" and v.device.type == "cuda"
            with PeakMemory(v.device) as mem:
                time_calls(v.call, v.device, 0, 1)
            mems[name] = None if ort_cuda else mem
            live[name] = v
        except Exception as err:  # every failure belongs in its row
            rows.append(_row(case, v, [], None, note=failure(err)))
            _release(case.device)
    fns = {name: v.call for name, v in live.items()}
    try:
        devices = {name: v.device for name, v in live.items()}
        measured = interleaved_rounds(fns, case.device, **vars(rounds), devices=devices)
    except Exception as err:  # an OOM in the rounds: the whole group is noted
        return rows + [_row(case, v, [], None, note=failure(err)) for v in live.values()]
    note = "" if measured.converged else f"CI > +-{rounds.tolerance:.0%} (cap)"
    for name, v in live.items():
        times = measured.times[name]
        rows.append(_row(case, v, times, mems[name], note=note, round_ms=times))
    return rows


RACE_REWARM = 1  # untimed calls of each network before its timed call in every round of a race


@dataclass
class Versus:
    """A model's best batch-1 variant raced against a reference model's PyTorch eager fp32."""

    model: str
    reference: str
    best: str  # the best variant's label, e.g. "onnxruntime int8 CPU"
    speedup: float  # median of the per-round ratios reference time / best time
    ci_low: float
    ci_high: float
    rounds: int
    reference_ms: float
    best_ms: float
    note: str = ""  # CI > +-5% (cap) | OOM | error: ...


def race_versus(
    model: str, reference: str, best: str, race: dict[str, Variant], case: Case, rounds
) -> Versus:
    """Warm ``race["reference"]`` and ``race["best"]`` up, time them in interleaved rounds and
    return the per-round speed-up of ``best`` over ``reference`` (a failure is the note).

    In each round each network runs once untimed before its timed call (``RACE_REWARM``): the
    speed-up is one of images/s, i.e. of calls back to back, and the first call of a 15 ms
    network right after a 260 ms one is about 30 % slower than the next ones (caches and the
    runtime's thread pool cleared; docs/benchmarks.md)."""
    try:
        for v in race.values():
            time_calls(v.call, v.device, case.warmup, 0)
        fns = {name: v.call for name, v in race.items()}
        devices = {name: v.device for name, v in race.items()}
        measured = interleaved_rounds(
            fns, case.device, **vars(rounds), devices=devices, rewarm=RACE_REWARM
        )
    except Exception as err:  # an OOM or a failure is reported, the bench goes on
        nan = math.nan
        return Versus(model, reference, best, nan, nan, nan, 0, nan, nan, failure(err))
    ref, fast = measured.times["reference"], measured.times["best"]
    ratio, low, high = paired_ratio(ref, fast)
    note = "" if measured.converged else f"CI > +-{rounds.tolerance:.0%} (cap)"
    return Versus(
        model,
        reference,
        best,
        ratio,
        low,
        high,
        len(ref),
        median_ci(ref)[0],
        median_ci(fast)[0],
        note,
    )


def _row(case: Case, v: Variant, times, mem, **extra) -> Result:
    dtype = v.dtype or (case.dtype if v.backend == "pytorch" else "fp32")
    c = replace(case, dtype=dtype, device=v.device)
    return make_result(c, "inference", v.backend, v.variant, times, mem, rounds=len(times), **extra)


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def autocast(device: torch.device, dtype_name: str):
    dtype = DTYPES[dtype_name]
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def inference_call(net: nn.Module, x: torch.Tensor, device, dtype="fp32", cudagraphs=False):
    """One inference call; with CUDA graphs each call starts a new replay step."""
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    with torch.inference_mode(), autocast(device, dtype):
        return net(x)


def torch_variant(case: Case, variant: str, net: nn.Module, cudagraphs: bool = False) -> Variant:
    """A PyTorch network on a fixed random batch of ``case``."""
    x = torch.randn(case.batch, 3, *case.size, device=case.device)
    return Variant(
        "pytorch",
        variant,
        lambda: inference_call(net, x, case.device, case.dtype, cudagraphs),
        case.device,
    )


def ort_variant(case: Case, variant: str, session) -> Variant:
    """An :class:`OnnxRuntimeNet` on a random batch already on the session's device."""
    x = torch.randn(case.batch, 3, *case.size, device=session.device)
    return Variant("onnxruntime", variant, lambda: session(x), session.device)


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
            rounds=len(times[k]),
        )
        for k, cl in enumerate(layouts)
    ]
