"""``make bench``: how fast is LIP-Net, next to smp peers, on this machine?

    python -m lipnet_pl.bench [only=[lipnet]] [size=473] [cuda.cuda_graphs=true] [device=cpu]

For every model: parameters, GFLOPs, inference latency (median and p90 over repeats, after
warm-up, device synchronised; CUDA events on GPU) and throughput at each batch size for the
eager model and the fast path (batch norm folded + channels_last, optionally torch.compile /
CUDA graphs), fp32 and autocast bf16/fp16 on GPU, peak memory, and the training-step throughput
(forward + backward + SGD). Without CUDA a reduced CPU profile runs (conf/bench.yaml ``cpu``).
Writes ``bench.json``, ``bench.md`` and ``fps_vs_batch.png`` and ends with
``fast-path speed-up: N.NNx`` (LIP-Net fast path over LIP-Net eager, fp32, batch 1).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, ListConfig, OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import nn

from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import make_fast
from lipnet_pl.models.summary import count_gflops, count_parameters

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
console = Console(width=160)


@dataclass
class Result:
    """One measured case (a row of the tables)."""

    model: str
    kind: str  # "inference" | "train"
    variant: str  # eager | fast | fast+compile | fast+cudagraphs | train
    dtype: str
    batch: int
    median_ms: float
    p90_ms: float
    images_per_s: float
    peak_mem_mib: float | None
    mem_kind: str
    params_m: float
    gflops: float


# ---------------------------------------------------------------- timing and memory


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_calls(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Wall time of each of ``repeats`` calls in ms, after ``warmup`` calls.

    On CUDA each call is bracketed by CUDA events and synchronised (kernels run asynchronously,
    so host timers would measure only the launch); on CPU ``time.perf_counter`` is exact.
    """
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
    else:
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


class PeakMemory:
    """Peak memory of a block: ``torch.cuda.max_memory_allocated`` on GPU; on CPU the peak
    resident set size (Linux VmHWM, reset through /proc/self/clear_refs) minus the RSS before."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "CUDA max allocated" if device.type == "cuda" else "CPU peak RSS increase"
        self.mib: float | None = None

    @staticmethod
    def _status(key: str) -> int | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._base = self._status("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        elif self._base is not None:
            peak = self._status("VmHWM")
            self.mib = None if peak is None else max(0, peak - self._base) / 2**20


# ---------------------------------------------------------------- cases


def _autocast(device: torch.device, dtype_name: str):
    dtype = DTYPES[dtype_name]
    return nullcontext() if dtype is None else torch.autocast(device_type=device.type, dtype=dtype)


def bench_inference(net, x, device, dtype_name, warmup, repeats, cudagraphs=False):
    """Latencies (ms) and peak memory of ``net(x)`` under inference mode (and autocast)."""

    def call():
        return bench_inference_call(net, x, device, cudagraphs, dtype_name)

    with PeakMemory(device) as mem:
        times = time_calls(call, device, warmup, repeats)
    return times, mem


def interleaved_speedup(eager, fast, x, device, pairs: int, cudagraphs: bool = False) -> dict:
    """Eager / fast median latency from alternating calls (eager, fast, eager, ...).

    On a shared machine the load changes during a run; alternating the two models makes both
    see the same conditions, so their ratio is far more stable than two separate series.
    """
    times: dict[str, list[float]] = {"eager": [], "fast": []}
    for i in range(pairs + 1):  # the first pair is a warm-up
        for name, net, graphs in (("eager", eager, False), ("fast", fast, cudagraphs)):
            t = time_calls(
                lambda net=net, graphs=graphs: bench_inference_call(net, x, device, graphs),
                device,
                0,
                1,
            )
            if i:
                times[name] += t
    eager_ms, fast_ms = statistics.median(times["eager"]), statistics.median(times["fast"])
    return {"eager_ms": eager_ms, "fast_ms": fast_ms, "speedup": eager_ms / fast_ms, "pairs": pairs}


def bench_inference_call(net, x, device, cudagraphs=False, dtype_name="fp32"):
    """One inference call; with CUDA graphs each call starts a new replay step (the outputs of
    the previous one may be overwritten)."""
    if cudagraphs:
        torch.compiler.cudagraph_mark_step_begin()
    with torch.inference_mode(), _autocast(device, dtype_name):
        return net(x)


def bench_train_step(model, batch, size, num_classes, device, dtype_name, warmup, repeats):
    """images/s of forward + cross-entropy + backward + SGD step on random data."""
    model = model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, *size, device=device)
    y = torch.randint(0, num_classes, (batch, *size), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        with _autocast(device, dtype_name):
            loss = F.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        opt.step()

    with PeakMemory(device) as mem:
        times = time_calls(step, device, warmup, repeats)
    model.eval()
    return times, mem


# ---------------------------------------------------------------- run


def _profile(cfg: DictConfig, device: torch.device) -> DictConfig:
    return cfg.cuda if device.type == "cuda" else cfg.cpu


def _compiled_models(profile: DictConfig, labels: list[str]) -> list[str]:
    spec = profile.get("compile", False)
    if spec is True:
        return labels
    if not spec:
        return []
    if isinstance(spec, ListConfig | list | tuple):
        return [lab for lab in labels if lab in list(spec)]
    raise ValueError(f"compile must be true, false or a list of model labels, got {spec!r}")


def _selected_models(cfg: DictConfig) -> dict[str, dict]:
    models = OmegaConf.to_container(cfg.models, resolve=True)
    if cfg.get("only"):
        only = [str(x) for x in cfg.only]
        unknown = [m for m in only if m not in models]
        if unknown:
            raise ValueError(f"only={only}: unknown model labels {unknown}; known: {list(models)}")
        models = {k: v for k, v in models.items() if k in only}
    if not models:
        raise ValueError("no models to benchmark: check models= / only=")
    return models


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} but CUDA is not available: use device=auto or cpu")
    return dev


def run(cfg: DictConfig, output_dir: Path) -> tuple[list[Result], float]:
    """Benchmark every selected model; write JSON/Markdown/plot into ``output_dir``."""
    device = _resolve_device(str(cfg.device))
    load_at_start = [round(v, 2) for v in os.getloadavg()]
    profile = _profile(cfg, device)
    models = _selected_models(cfg)
    compiled = _compiled_models(profile, list(models))
    batch_sizes = [int(b) for b in profile.batch_sizes]
    dtypes = [str(d) for d in profile.dtypes]
    bad = [d for d in dtypes if d not in DTYPES]
    if bad or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(
            f"bench profile: dtypes must be in {list(DTYPES)} (got {dtypes}), batch_sizes >= 1 (got {batch_sizes})"
        )
    if device.type == "cuda":
        console.print(
            f"CUDA profile on {torch.cuda.get_device_name(device)}: batch sizes {batch_sizes}, dtypes {dtypes}, "
            f"{profile.repeats} repeats, torch.compile for {compiled or 'no model'}"
            f"{' (CUDA graphs)' if profile.cuda_graphs else ''}"
        )
    else:
        console.print(
            f"CUDA not available: reduced CPU configuration (batch {'/'.join(map(str, batch_sizes))}, "
            f"{'/'.join(dtypes)}, {profile.warmup}+{profile.repeats} warm-up+repeats, train batch "
            f"{profile.train_batch_size}, compile: {','.join(compiled) or 'none'})",
            soft_wrap=True,
        )
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg.threads))
    torch.set_num_threads(torch.get_num_threads())  # explicit, so it is what we print
    console.print(
        f"torch {torch.__version__} | {platform.processor() or platform.machine()} | torch threads "
        f"{torch.get_num_threads()} (interop {torch.get_num_interop_threads()}) | input "
        f"{cfg.height}x{cfg.width} | output {output_dir}"
    )
    size = (int(cfg.height), int(cfg.width))
    fp = cfg.fast_path
    results: list[Result] = []
    speedup: dict | None = None
    n_cases = sum(
        len(batch_sizes) * len(dtypes) * (2 + (label in compiled))
        + (len(dtypes) if cfg.train_step else 0)
        for label in models
    )
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task("bench", total=n_cases)
        for label, kwargs in models.items():
            kwargs = dict(kwargs)
            name = kwargs.pop("name")
            started = time.perf_counter()
            torch.manual_seed(0)
            model = build_model(name, num_classes=int(cfg.num_classes), **kwargs).eval()
            params_m = count_parameters(model) / 1e6
            gflops = count_gflops(model, *size)
            model = model.to(device)
            variants: dict[str, tuple[nn.Module, bool]] = {
                "eager": (model, False),
                "fast": (
                    make_fast(model, fold_bn=fp.fold_bn, channels_last=fp.channels_last),
                    False,
                ),
            }
            if label in compiled:
                graphs = device.type == "cuda" and bool(profile.cuda_graphs)
                variants["fast+cudagraphs" if graphs else "fast+compile"] = (
                    make_fast(
                        model,
                        fold_bn=fp.fold_bn,
                        channels_last=fp.channels_last,
                        compile=True,
                        compile_mode="reduce-overhead" if graphs else None,
                        dynamic=False,
                    ),
                    graphs,
                )
            for variant, (net, graphs) in variants.items():
                for dtype_name in dtypes:
                    for batch in batch_sizes:
                        progress.update(
                            task, description=f"{label} {variant} {dtype_name} b{batch}"
                        )
                        x = torch.randn(batch, 3, *size, device=device)
                        times, mem = bench_inference(
                            net,
                            x,
                            device,
                            dtype_name,
                            int(profile.warmup),
                            int(profile.repeats),
                            graphs,
                        )
                        med = statistics.median(times)
                        results.append(
                            Result(
                                label,
                                "inference",
                                variant,
                                dtype_name,
                                batch,
                                med,
                                _percentile(times, 0.9),
                                batch * 1e3 / med,
                                mem.mib,
                                mem.kind,
                                params_m,
                                gflops,
                            )
                        )
                        progress.advance(task)
            if label == cfg.speedup_model and "fp32" in dtypes:
                progress.update(task, description=f"{label} eager vs fast, interleaved")
                fast_name = next(
                    v for v in ("fast+cudagraphs", "fast+compile", "fast") if v in variants
                )
                fast_net, graphs = variants[fast_name]
                x = torch.randn(1, 3, *size, device=device)
                speedup = interleaved_speedup(
                    model, fast_net, x, device, int(cfg.speedup_pairs), graphs
                )
                speedup.update(model=label, fast_variant=fast_name)
            if cfg.train_step:
                for dtype_name in dtypes:
                    progress.update(task, description=f"{label} train {dtype_name}")
                    b = int(profile.train_batch_size)
                    times, mem = bench_train_step(
                        model,
                        b,
                        size,
                        int(cfg.num_classes),
                        device,
                        dtype_name,
                        1,
                        int(profile.train_repeats),
                    )
                    med = statistics.median(times)
                    results.append(
                        Result(
                            label,
                            "train",
                            "train",
                            dtype_name,
                            b,
                            med,
                            _percentile(times, 0.9),
                            b * 1e3 / med,
                            mem.mib,
                            mem.kind,
                            params_m,
                            gflops,
                        )
                    )
                    progress.advance(task)
            progress.console.print(f"{label}: measured in {time.perf_counter() - started:.0f} s")
            del variants, model
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    if speedup is None:  # the A/B run was not possible: fall back to the table
        speedup = {
            "speedup": fast_path_speedup(results, str(cfg.speedup_model)),
            "model": cfg.speedup_model,
            "fast_variant": "from the table",
        }
    speedup["load_average_at_start"] = load_at_start
    write_outputs(cfg, results, device, output_dir, speedup)
    return results, float(speedup["speedup"])


def fast_path_speedup(results: list[Result], model: str = "lipnet") -> float:
    """Eager / fast-path median latency of ``model``, fp32, batch 1 (the compiled fast path
    when it was measured, else BN folding + channels_last). NaN when not measured."""
    rows = {
        r.variant: r
        for r in results
        if r.model == model and r.kind == "inference" and r.dtype == "fp32" and r.batch == 1
    }
    fast = rows.get("fast+cudagraphs") or rows.get("fast+compile") or rows.get("fast")
    if "eager" not in rows or fast is None:
        return float("nan")
    return rows["eager"].median_ms / fast.median_ms


# ---------------------------------------------------------------- outputs


def _mem(r: Result) -> str:
    return "n/a" if r.peak_mem_mib is None else f"{r.peak_mem_mib:.0f}"


HEADERS = [
    "model",
    "variant",
    "dtype",
    "batch",
    "median ms",
    "p90 ms",
    "img/s",
    "peak MiB",
    "params M",
    "GFLOPs",
]


def _row(r: Result) -> list[str]:
    return [
        r.model,
        r.variant,
        r.dtype,
        str(r.batch),
        f"{r.median_ms:.1f}",
        f"{r.p90_ms:.1f}",
        f"{r.images_per_s:.2f}",
        _mem(r),
        f"{r.params_m:.2f}",
        f"{r.gflops:.1f}",
    ]


def to_markdown(results: list[Result], meta: dict) -> str:
    lines = [
        f"# Benchmark {meta['date']}",
        "",
        f"- device: {meta['device']}",
        f"- torch {meta['torch']}, "
        f"threads {meta['threads']}, input {meta['input']}, memory: {meta['mem_kind']}",
        f"- load average (1/5/15 min) at the start "
        f"{meta['fast_path_speedup_detail'].get('load_average_at_start', 'n/a')}, at the end "
        f"{meta['load_average_1_5_15']} (other processes distort CPU timings)",
        "",
    ]
    for kind, title in (
        ("inference", "Inference"),
        ("train", "Training step (forward + backward + SGD)"),
    ):
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        lines += [f"## {title}", "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
        lines += ["| " + " | ".join(_row(r)) + " |" for r in rows]
        lines.append("")
    d = meta["fast_path_speedup_detail"]
    if "pairs" in d:
        lines.append(
            f"Fast path = `{d['fast_variant']}`; speed-up over eager for {d['model']} (fp32, batch 1) from "
            f"{d['pairs']} interleaved eager/fast calls: {d['eager_ms']:.1f} ms -> {d['fast_ms']:.1f} ms."
        )
        lines.append("")
    lines.append(f"fast-path speed-up: {meta['fast_path_speedup']:.2f}x")
    return "\n".join(lines) + "\n"


def plot_fps(results: list[Result], path: Path) -> None:
    """Images/s against batch size, one colour per model, one line style per variant (fp32)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = {"eager": "--", "fast": "-", "fast+compile": ":", "fast+cudagraphs": ":"}
    models = list(dict.fromkeys(r.model for r in results))
    for i, model in enumerate(models):
        for variant, style in styles.items():
            rows = sorted(
                (
                    r
                    for r in results
                    if r.model == model
                    and r.variant == variant
                    and r.dtype == "fp32"
                    and r.kind == "inference"
                ),
                key=lambda r: r.batch,
            )
            if rows:
                ax.plot(
                    [r.batch for r in rows],
                    [r.images_per_s for r in rows],
                    style,
                    marker="o",
                    color=f"C{i}",
                    label=f"{model} {variant}",
                )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s (fp32)")
    ax.set_title("Inference throughput")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plain_config(cfg: DictConfig) -> dict:
    """The bench settings as plain data (``paths`` needs a Hydra run, so it is left out)."""
    out = {}
    for key in cfg:
        if key == "paths":
            continue
        value = cfg[key]
        out[key] = (
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    return out


def write_outputs(
    cfg: DictConfig, results: list[Result], device: torch.device, out: Path, speedup: dict
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({platform.machine()})",
        "reduced_cpu_profile": device.type != "cuda",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "input": f"{cfg.height}x{cfg.width}",
        "mem_kind": results[0].mem_kind if results else "",
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "fast_path_speedup": float(speedup["speedup"]),
        "fast_path_speedup_detail": speedup,
        "config": _plain_config(cfg),
    }
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    paths["json"].write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2)
    )
    paths["markdown"].write_text(to_markdown(results, meta))
    if cfg.get("plot", True):
        paths["plot"] = out / "fps_vs_batch.png"
        plot_fps(results, paths["plot"])
    table = Table(
        title=f"inference / training at {meta['input']} on {meta['device']} (memory: {meta['mem_kind']})"
    )
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("model", "variant", "dtype") else "right")
    for r in results:
        table.add_row(*_row(r))
    console.print(table)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
    return meta


def _output_dir(cfg: DictConfig) -> Path:
    if cfg.get("output_dir"):
        return Path(cfg.output_dir)
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # composed without @hydra.main
        return Path("outputs/bench") / dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="bench")
def main(cfg: DictConfig) -> None:
    _, speedup = run(cfg, _output_dir(cfg))
    print(f"fast-path speed-up: {speedup:.2f}x", flush=True)


if __name__ == "__main__":
    main()
