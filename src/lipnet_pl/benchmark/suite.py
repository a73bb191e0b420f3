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
import itertools
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lipnet_pl.benchmark.report import best_lines, layout_lines, print_table, write_outputs
from lipnet_pl.benchmark.runners import (
    DTYPES,
    Case,
    ModelInfo,
    Result,
    inference_call,
    ort_inference,
    torch_inference,
    torch_train_steps,
)
from lipnet_pl.benchmark.timing import interleaved_ratio
from lipnet_pl.config import compose, config_errors, plain
from lipnet_pl.core.model_export import export_onnx
from lipnet_pl.core.quantize import quantize_onnx_int8
from lipnet_pl.errors import UserError
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import fold_batchnorm, make_fast
from lipnet_pl.models.summary import count_gflops, count_parameters
from lipnet_pl.runtime import resolve_device

console = Console(width=160)


def model_config(name: str, num_classes: int) -> dict:
    """``conf/model/<name>.yaml`` as training composes it (``model=<name>``): build_model kwargs."""
    cfg = compose("train", [f"model={name}", f"data.num_classes={num_classes}"])
    return plain(cfg.model.net)


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


def check_profile(profile: DictConfig) -> None:
    dtypes = [str(d) for d in profile.dtypes]
    batches = [int(b) for b in profile.batch_sizes]
    if any(d not in DTYPES for d in dtypes) or not batches or min(batches) < 1:
        raise UserError(
            f"bench profile: dtypes must be in {list(DTYPES)} (got {dtypes}) and batch_sizes "
            f">= 1 (got {batches})"
        )


def configure(cfg: DictConfig, device: torch.device) -> None:
    """Threads, and cuDNN autotuning as in training (``trainer.benchmark``)."""
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(cfg.get("cudnn_benchmark", True))
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


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


def onnx_rows(model, label: str, cfg: DictConfig, case: Case, batches, work: Path) -> list:
    """ONNX Runtime fp32 (and int8 for the listed models) at every batch size."""
    ort = cfg.onnxruntime
    example = torch.randn(1, 3, *case.size)
    files = {
        "fp32": export_onnx(fold_batchnorm(model).cpu(), example, work / f"{label}.onnx", True, 18)
    }
    if label in plain(ort.get("int8") or []):
        calib = [torch.randn(1, 3, *case.size).numpy() for _ in range(int(ort.calibration_batches))]
        files["int8"] = quantize_onnx_int8(files["fp32"], work / f"{label}.int8.onnx", calib)
    return [
        ort_inference(replace(case, batch=int(b), dtype="fp32"), variant, path)
        for variant, path in files.items()
        for b in batches
    ]


def speedup(model, variants: dict, case: Case, pairs: int) -> dict:
    """Eager vs the best fast path (fp32, batch 1) from interleaved calls."""
    fast_name = next(v for v in ("fast+cudagraphs", "fast+compile", "fast") if v in variants)
    fast_net, graphs = variants[fast_name]
    x = torch.randn(1, 3, *case.size, device=case.device)
    ratio = interleaved_ratio(
        lambda: inference_call(model, x, case.device),
        lambda: inference_call(fast_net, x, case.device, cudagraphs=graphs),
        case.device,
        pairs,
    )
    return {**ratio, "model": case.info.label, "fast_variant": fast_name}


def bench_model(label: str, net_cfg: dict, cfg: DictConfig, profile, base: Case, progress, work):
    """Every case of one model; returns (results, eager-vs-fast ratio or None)."""
    torch.manual_seed(0)
    with config_errors(f"model {label}"):
        model = build_model(**net_cfg).eval()
    info = ModelInfo(label, count_parameters(model) / 1e6, count_gflops(model, *base.size))
    case = replace(base, info=info)
    model = model.to(case.device)
    variants = torch_variants(model, label, profile, cfg, case.device)
    results = []
    for (variant, (net, graphs)), dtype, batch in itertools.product(
        variants.items(), profile.dtypes, profile.batch_sizes
    ):
        progress(f"{label} {variant} {dtype} b{batch}")
        results.append(
            torch_inference(replace(case, dtype=str(dtype), batch=int(batch)), variant, net, graphs)
        )
    ratio = (
        speedup(model, variants, case, int(cfg.speedup_pairs))
        if label == cfg.speedup_model
        else None
    )
    if cfg.onnxruntime.enabled:
        progress(f"{label} onnxruntime")
        results += onnx_rows(model, label, cfg, case, profile.batch_sizes, work)
    for dtype in profile.dtypes if cfg.train_step else ():
        progress(f"{label} train {dtype}")
        train_case = replace(
            case,
            dtype=str(dtype),
            batch=int(profile.train_batch_size),
            repeats=int(profile.train_repeats),
        )
        layouts = [bool(cfg.channels_last_train)]
        if layouts[0] and label in plain(cfg.get("train_contiguous") or []):
            layouts.append(False)  # channels_last's gain, measured in the same run
        results += torch_train_steps(train_case, model, int(cfg.num_classes), layouts)
    return results, ratio


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


def meta_data(cfg, device, results, ratio, load_start) -> dict[str, Any]:
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = "not installed"
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({cpu_model()}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()})"
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": name,
        "reduced_cpu_profile": device.type != "cuda",
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "threads": torch.get_num_threads(),
        "input": f"{cfg.height}x{cfg.width}",
        "mem_kind": results[0].mem_kind if results else "",
        "load_average_at_start": load_start,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "fast_path_speedup": float(ratio["speedup"]) if ratio else float("nan"),
        "speedup_detail": ratio or {},
        "layout_lines": layout_lines(results),
        "best_lines": best_lines(results),
    }


def run(cfg: DictConfig, output_dir: Path) -> tuple[list[Result], dict[str, Any]]:
    """Benchmark every selected model; write JSON/Markdown/plot into ``output_dir``."""
    device = resolve_device(str(cfg.device))
    profile = cfg.cuda if device.type == "cuda" else cfg.cpu
    check_profile(profile)
    configure(cfg, device)
    models = selected_models(cfg)
    size = (int(cfg.height), int(cfg.width))
    load_start = [round(v, 2) for v in os.getloadavg()]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (reduced profile)"
    console.print(
        f"{where}: batch sizes {list(profile.batch_sizes)}, dtypes {list(profile.dtypes)}, "
        f"{profile.warmup}+{profile.repeats} warm-up+repeats | torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads | input {size[0]}x{size[1]} | output {output_dir}"
    )
    results: list[Result] = []
    ratio = None
    base = Case(
        ModelInfo("", 0.0, 0.0), device, "fp32", 1, size, int(profile.warmup), int(profile.repeats)
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress, tempfile.TemporaryDirectory() as work:
        task = progress.add_task("bench", total=len(models))
        for label, net_cfg in models.items():
            started = time.perf_counter()
            rows, r = bench_model(
                label,
                net_cfg,
                cfg,
                profile,
                base,
                lambda text: progress.update(task, description=text),
                Path(work),
            )
            results += rows
            ratio = ratio or r
            progress.console.print(f"{label}: measured in {time.perf_counter() - started:.0f} s")
            progress.advance(task)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    meta = meta_data(cfg, device, results, ratio, load_start)
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
    for line in [*meta["layout_lines"], *meta["best_lines"]]:
        print(line)
    print(f"fast-path speed-up: {meta['fast_path_speedup']:.2f}x", flush=True)
    return meta
