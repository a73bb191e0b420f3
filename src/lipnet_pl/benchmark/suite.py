"""``make bench``: how fast are LIP-Net and its peers on this machine, per backend?

For every model of ``conf/bench.yaml`` (network configs read from ``conf/model/``): parameters,
GFLOPs, inference latency (median and p90 after warm-up) and throughput per batch size for
PyTorch eager, the fast path (BN folded + channels_last, optionally torch.compile / CUDA graphs)
per dtype, ONNX Runtime fp32 (and int8 for the models listed), peak memory, and the training-step
throughput. Without CUDA the reduced ``cpu`` profile runs. Ends with one ``best <model>: ...``
line per model and ``fast-path speed-up: N.NNx`` (LIP-Net fast path over eager, fp32, batch 1).
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import importlib.metadata
import itertools
import os
import platform
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lipnet_pl.benchmark.openvino import lazy_openvino
from lipnet_pl.benchmark.report import (
    best_lines,
    fast_path_line,
    fast_path_speedup,
    layout_lines,
    print_table,
    versus_line,
    write_outputs,
)
from lipnet_pl.benchmark.runners import (
    DTYPES,
    Case,
    ModelInfo,
    Result,
    RoundSettings,
    Variant,
    Versus,
    failure,
    make_result,
    measure_group,
    ort_variant,
    race_versus,
    torch_train_steps,
    torch_variant,
)
from lipnet_pl.benchmark.x86_int8 import lazy_x86_int8
from lipnet_pl.config import config_errors, model_config, plain
from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet
from lipnet_pl.core.quantize import quantize_onnx_int8
from lipnet_pl.errors import UserError
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import fold_batchnorm, make_fast
from lipnet_pl.models.summary import count_gflops, count_parameters
from lipnet_pl.precision import auto_dtype
from lipnet_pl.runtime import resolve_device

console = Console(width=160)


def selected_models(cfg: DictConfig) -> dict[str, dict]:
    """name -> network config (``build_model`` kwargs) of the models to measure."""
    names = [str(n) for n in plain(cfg.models)]
    if cfg.get("only"):
        only = [str(x) for x in plain(cfg.only)]
        unknown = [m for m in only if m not in names]
        if unknown:
            raise UserError(f"only={only}: not in models {names}: {unknown}")
        names = [n for n in names if n in only]
    if not names:
        raise UserError("no models to benchmark: check models= / only=")
    return {name: model_config(name, int(cfg.num_classes)) for name in names}


MODEL_LIST_KEYS = (
    "onnxruntime.int8",
    "x86_int8",
    "openvino",
    "versus_reference",
    "train_contiguous",
)


def model_list(cfg: DictConfig, key: str) -> list[str]:
    """The model names under ``key`` (null = none); anything but a list of names is a
    :class:`UserError` naming the key."""
    value = OmegaConf.select(cfg, key)
    names = [] if value is None else plain(value)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{key}={names!r}: must be a list of model names, e.g. {key}=[lipnet]")
    return names


def check_model_lists(cfg: DictConfig) -> None:
    """Every model-list key and ``reference_model`` checked before anything is measured."""
    for key in MODEL_LIST_KEYS:
        model_list(cfg, key)
    if model_list(cfg, "versus_reference"):
        model_config(str(cfg.reference_model), int(cfg.num_classes), key="reference_model")


def profile_dtypes(profile: DictConfig, device: torch.device) -> list[str]:
    """The profile's dtypes, ``auto`` resolved (:func:`lipnet_pl.precision.auto_dtype`)."""
    dtypes = [auto_dtype(device) if str(d) == "auto" else str(d) for d in profile.dtypes]
    batches = [int(b) for b in profile.batch_sizes]
    if any(d not in DTYPES for d in dtypes) or not batches or min(batches) < 1:
        raise UserError(
            f"bench profile: dtypes must be auto or in {list(DTYPES)} (got {dtypes}) and "
            f"batch_sizes >= 1 (got {batches})"
        )
    return list(dict.fromkeys(dtypes))


def round_settings(profile: DictConfig, name: str = "cpu") -> RoundSettings:
    """The profile's round limits, checked: ``max_rounds=0`` would time nothing (nan rows)."""
    low, high = int(profile.min_rounds), int(profile.max_rounds)
    if not 1 <= low <= high:
        raise UserError(
            f"{name}.min_rounds={low}, {name}.max_rounds={high}: need 1 <= min_rounds <= "
            "max_rounds (convergence is judged from 6 rounds on)"
        )
    if float(profile.ci_tolerance) <= 0 or float(profile.time_cap_s) <= 0:
        raise UserError(
            f"{name}.ci_tolerance={profile.ci_tolerance} and {name}.time_cap_s="
            f"{profile.time_cap_s} must be > 0"
        )
    return RoundSettings(
        min_rounds=int(profile.min_rounds),
        max_rounds=int(profile.max_rounds),
        tolerance=float(profile.ci_tolerance),
        time_cap_s=float(profile.time_cap_s),
    )


@contextmanager
def bench_settings(cfg: DictConfig, device: torch.device) -> Iterator[None]:
    """Threads, cuDNN autotuning and TF32 as in training for the run, restored after; a
    Dynamo recompile-limit hit raises (an error in the row) instead of running eagerly."""
    cuda = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (
        torch.get_num_threads(),
        torch.backends.cudnn.benchmark,
        cuda[0].allow_tf32,
        cuda[1].allow_tf32,
    )
    try:
        if cfg.get("threads"):
            torch.set_num_threads(int(cfg.threads))
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = bool(cfg.get("cudnn_benchmark", True))
            cuda[0].allow_tf32 = cuda[1].allow_tf32 = True
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            yield
    finally:
        torch.set_num_threads(saved[0])
        torch.backends.cudnn.benchmark, cuda[0].allow_tf32, cuda[1].allow_tf32 = saved[1:]


def torch_variants(model, label: str, profile: DictConfig, cfg: DictConfig, device) -> dict:
    """variant name -> (network, uses CUDA graphs)."""
    fp = cfg.fast_path
    variants = {
        "eager": (model, False),
        "fast": (make_fast(model, fold_bn=fp.fold_bn, channels_last=fp.channels_last), False),
    }
    compiled = profile.get("compile", False)
    if compiled is True or (compiled and label in plain(compiled)):
        graphs = device.type == "cuda" and bool(profile.get("cuda_graphs", False))
        net = make_fast(
            model,
            fold_bn=fp.fold_bn,
            channels_last=fp.channels_last,
            compile=True,
            compile_mode="reduce-overhead" if graphs else None,
            dynamic=False,
        )
        variants["fast+cudagraphs" if graphs else "fast+compile"] = (net, graphs)
    return variants


def export_fp32(model, label: str, case: Case, work: Path) -> Path:
    """The BN-folded network as ONNX with free batch/height/width, as ``export`` writes it: the
    file the ONNX Runtime and OpenVINO rows run."""
    example = torch.randn(1, 3, *case.size)
    return export_onnx(fold_batchnorm(model).cpu(), example, work / f"{label}.onnx", True, 18)


def calibration_inputs(cfg: DictConfig, case: Case) -> list[np.ndarray]:
    """The int8 calibration batches of ONNX Runtime and OpenVINO alike: random inputs (their
    values do not change the speed)."""
    count = int(cfg.onnxruntime.calibration_batches)
    return [torch.randn(1, 3, *case.size).numpy() for _ in range(count)]


def ort_sessions(fp32: Path, label: str, cfg: DictConfig, case: Case, work: Path, calib) -> dict:
    """variant -> ONNX Runtime session: fp32 on the bench device (the CUDA provider when this
    onnxruntime has it, else the CPU one: the row says which), int8 (QDQ) on the CPU provider
    only (on CUDA it would run dequantize + fp32 convolutions)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA provider: the row is labelled CPU instead
        sessions = {"fp32": OnnxRuntimeNet(fp32, device=str(case.device), spinning=False)}
    if label in model_list(cfg, "onnxruntime.int8"):
        int8 = quantize_onnx_int8(fp32, work / f"{label}.int8.onnx", calib)
        sessions["int8"] = OnnxRuntimeNet(int8, device="cpu", spinning=False)
    return sessions


def x86_int8_variants(model, label: str, cfg: DictConfig, case: Case, batch: int) -> dict:
    """PyTorch's x86 int8 path (torchao pt2e, compiled) for the models listed in
    ``x86_int8``, CPU benches only, at the first batch size (``benchmark/x86_int8.py``)."""
    if case.device.type != "cpu" or label not in model_list(cfg, "x86_int8"):
        return {}
    example = torch.randn(batch, 3, *case.size)
    call = lazy_x86_int8(fold_batchnorm(model).cpu().eval(), example)
    return {"pt2e": Variant("pytorch", "pt2e+compile", call, torch.device("cpu"), dtype="int8")}


def openvino_variants(fp32: Path | None, label, cfg, case: Case, batch: int, calib) -> dict:
    """OpenVINO fp32 and int8 (NNCF, calibrated on ``calib`` as ONNX Runtime int8 is) on the CPU
    for the models listed in ``openvino``, at the first batch size (compiled for one shape;
    ``benchmark/openvino.py``)."""
    if fp32 is None or label not in model_list(cfg, "openvino"):
        return {}
    example = torch.randn(batch, 3, *case.size)
    cpu = torch.device("cpu")
    return {
        "ov fp32": Variant("openvino", "fp32", lazy_openvino(fp32, example), cpu),
        "ov int8": Variant("openvino", "int8", lazy_openvino(fp32, example, calib), cpu),
    }


def group_variants(
    case: Case, nets: dict, sessions: dict, first_batch: bool, extra: dict | None = None
) -> dict:
    """Every variant measured together at one batch size and dtype: the PyTorch ones, and the
    ONNX Runtime ones (and ``extra``: PyTorch int8, OpenVINO) in the fp32 groups (CPU-provider
    sessions on a GPU bench at the first batch size only: a CPU row at batch 64 tells nothing
    about the GPU and takes minutes; the ``extra`` ones are compiled for the first batch size)."""
    variants = {name: torch_variant(case, name, net, g) for name, (net, g) in nets.items()}
    if case.dtype == "fp32" and first_batch:
        variants.update(extra or {})
    if case.dtype == "fp32":
        for name, session in sessions.items():
            if first_batch or session.device.type == case.device.type:
                variants[f"ort {name}"] = ort_variant(case, name, session)
    return variants


def bench_model(label: str, net_cfg: dict, cfg: DictConfig, profile, base: Case, progress, work):
    """Every case of one model, in its own Dynamo compile cache; returns the rows."""
    torch.manual_seed(0)
    torch._dynamo.reset()  # per-model compile cache: the last model's graphs never count
    with config_errors(f"model {label}"):
        model = build_model(**net_cfg).eval()
    info = ModelInfo(label, count_parameters(model) / 1e6, count_gflops(model, *base.size))
    case = replace(base, info=info)
    model = model.to(case.device)
    nets = torch_variants(model, label, profile, cfg, case.device)
    ort = bool(cfg.onnxruntime.enabled)
    onnx = ort or label in model_list(cfg, "openvino")
    fp32 = export_fp32(model, label, case, work) if onnx else None
    calib = calibration_inputs(cfg, case)
    sessions = ort_sessions(fp32, label, cfg, case, work, calib) if ort else {}
    results, first, versus = [], {}, []
    batches = [int(b) for b in profile.batch_sizes]
    int8 = x86_int8_variants(model, label, cfg, case, batches[0])
    int8 |= openvino_variants(fp32, label, cfg, case, batches[0], calib)
    for batch, dtype in itertools.product(batches, profile_dtypes(profile, case.device)):
        progress(f"{label} b{batch} {dtype}")
        group = replace(case, dtype=dtype, batch=batch)
        variants = group_variants(group, nets, sessions, batch == batches[0], int8)
        rows = measure_group(group, variants, round_settings(profile))
        results += rows
        if batch == 1:  # the best batch-1 variant may race the reference model below
            first.update({(r.backend, r.variant, r.dtype): v for r, v in _pairs(rows, variants)})
    best = batch_one_best(results)
    if best is not None and label in model_list(cfg, "versus_reference"):
        progress(f"{label} vs {cfg.reference_model} eager")
        variant = first[(best.backend, best.variant, best.dtype)]
        versus.append(versus_reference(label, cfg, profile, case, best, variant))
    del nets, sessions, first, int8
    for dtype in profile_dtypes(profile, case.device) if cfg.train_step else ():
        progress(f"{label} train {dtype}")
        results += train_rows(label, model, cfg, replace(case, dtype=dtype), profile)
    torch._dynamo.reset()
    return results, versus


def _pairs(rows: list[Result], variants: dict) -> list[tuple[Result, Any]]:
    """Each measured row with the variant that made it (a group's variants differ in backend
    or variant name)."""
    by_key = {(v.backend, v.variant): v for v in variants.values()}
    return [(r, by_key[(r.backend, r.variant)]) for r in rows if r.ok]


def batch_one_best(results: list[Result]) -> Result | None:
    rows = [r for r in results if r.kind == "inference" and r.batch == 1 and r.ok]
    return max(rows, key=lambda r: r.images_per_s) if rows else None


def versus_reference(label, cfg, profile, case: Case, best: Result, variant) -> Versus:
    """``label``'s best batch-1 row (``variant`` made it) against ``reference_model``'s PyTorch
    eager fp32 at batch 1, timed in interleaved rounds of their own: the real-time network's
    speed-up over the paper configuration from the same rounds (not a ratio of two groups timed
    minutes apart)."""
    reference = str(cfg.reference_model)
    torch.manual_seed(0)
    ref_net = build_model(**model_config(reference, int(cfg.num_classes))).eval()
    ref_case = replace(case, dtype="fp32", batch=1)
    race = {
        "reference": torch_variant(ref_case, "eager", ref_net.to(case.device)),
        "best": variant,
    }
    return race_versus(label, reference, best.label, race, case, round_settings(profile))


def train_rows(label: str, model, cfg: DictConfig, case: Case, profile) -> list[Result]:
    """The training-step rows; a failure (OOM) is a row with that note."""
    train_case = replace(
        case, batch=int(profile.train_batch_size), repeats=int(profile.train_repeats)
    )
    layouts = [bool(cfg.channels_last_train)]
    if layouts[0] and label in model_list(cfg, "train_contiguous"):
        layouts.append(False)  # channels_last's gain, measured in the same run
    try:
        return torch_train_steps(train_case, model, int(cfg.num_classes), layouts)
    except Exception as err:  # e.g. OOM at batch 32: noted, the run goes on
        model.eval()
        variant = "train+channels_last" if layouts[0] else "train"
        return [make_result(train_case, "train", "pytorch", variant, [], None, note=failure(err))]


def cpu_model() -> str:
    """The CPU's model name (Linux), else the architecture: timings depend on it (AVX2 vs
    AVX512-VNNI changed LIP-Net's CPU latency 2x on our machines)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


INT8_FLAGS = {"avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX-INT8"}


def int8_isa(cpuinfo: str | None = None) -> str:
    """The CPU's int8 instructions from /proc/cpuinfo's flags (``AVX512-VNNI AMX-INT8``), or
    ``none``: int8 speed-ups differ about 2x between CPUs with and without them."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return "unknown"
    flags = next(
        (ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines() if ln.startswith("flags")), []
    )
    return " ".join(name for flag, name in INT8_FLAGS.items() if flag in flags) or "none"


def _version(module: str) -> str:
    """The installed version, read from the package's metadata when it is not imported yet (an
    optional backend is not imported for a version string)."""
    if module in sys.modules:
        return getattr(sys.modules[module], "__version__", "?")
    try:
        return importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def meta_data(cfg, device, results, load_start) -> dict[str, Any]:
    ratio = fast_path_speedup(results, str(cfg.speedup_model))
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({cpu_model()}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()}, "
        f"int8: {int8_isa()})"
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": name,
        "reduced_cpu_profile": device.type != "cuda",
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "threads": torch.get_num_threads(),
        "input": f"{cfg.height}x{cfg.width}",
        "mem_kind": "; ".join(sorted({r.mem_kind for r in results if r.mem_kind})),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "speedup_detail": ratio,
        "fast_path_speedup": ratio.get("speedup", float("nan")),
        "fast_path_line": fast_path_line(ratio),
        "layout_lines": layout_lines(results),
        "best_lines": best_lines(results),
    }


def run(cfg: DictConfig, output_dir: Path) -> tuple[list[Result], dict[str, Any]]:
    """Benchmark every selected model; write JSON/Markdown/plot into ``output_dir``."""
    device = resolve_device(str(cfg.device))
    profile = cfg.cuda if device.type == "cuda" else cfg.cpu
    dtypes = profile_dtypes(profile, device)
    models = selected_models(cfg)
    check_model_lists(cfg)
    round_settings(profile, "cuda" if device.type == "cuda" else "cpu")  # before measuring
    size = (int(cfg.height), int(cfg.width))
    if min(size) < 1:
        raise UserError(
            f"size (height={size[0]}, width={size[1]}) must be >= 1 pixel, e.g. size=473"
        )
    load_start = [round(v, 2) for v in os.getloadavg()]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (reduced profile)"
    console.print(
        f"{where}: batch sizes {list(profile.batch_sizes)}, dtypes {dtypes}, {profile.warmup} "
        f"warm-up calls, interleaved rounds to +-{float(profile.ci_tolerance):.0%} | torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads | input {size[0]}x{size[1]} | output {output_dir}"
    )
    results: list[Result] = []
    versus: list[Versus] = []
    base = Case(ModelInfo("", 0.0, 0.0), device, "fp32", 1, size, int(profile.warmup), 0)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress, tempfile.TemporaryDirectory() as work, bench_settings(cfg, device):
        task = progress.add_task("bench", total=len(models))
        for label, net_cfg in models.items():
            started = time.perf_counter()
            rows, raced = bench_model(
                label,
                net_cfg,
                cfg,
                profile,
                base,
                lambda text: progress.update(task, description=text),
                Path(work),
            )
            results += rows
            versus += raced
            progress.console.print(f"{label}: measured in {time.perf_counter() - started:.0f} s")
            progress.advance(task)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    meta = meta_data(cfg, device, results, load_start)
    meta["versus"] = [asdict(v) for v in versus]
    meta["versus_lines"] = [versus_line(v) for v in versus]
    meta["config"] = {k: plain(v) for k, v in cfg.items() if k not in ("paths", "hydra")}
    paths = write_outputs(results, meta, output_dir, bool(cfg.get("plot", True)))
    print_table(results, meta, console)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    return results, meta


def bench(cfg: DictConfig) -> dict[str, Any]:
    """The command: run, then the best-backend lines and, last, the fast-path speed-up."""
    out = Path(cfg.output_dir) if cfg.get("output_dir") else Path(cfg.paths.output_dir)
    _, meta = run(cfg, out)
    lines = [*meta["layout_lines"], *meta["best_lines"], *meta["versus_lines"]]
    for line in [*lines, meta["fast_path_line"]]:
        print(line, flush=True)
    return meta
