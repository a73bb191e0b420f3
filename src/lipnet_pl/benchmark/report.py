"""Benchmark outputs: bench.json, bench.md, a rich table, the best-backend lines and a plot of
each model's best images/s against its GFLOPs (what users compare first)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lipnet_pl.benchmark.runners import Result, Versus
from lipnet_pl.core.timing import paired_ratio

HEADERS = [
    "model",
    "backend",
    "variant",
    "device",
    "dtype",
    "batch",
    "median ms",
    "95% CI ms",
    "rounds",
    "img/s",
    "peak MiB",
    "params M",
    "GFLOPs",
    "note",
]


def row(r: Result) -> list[str]:
    mem = "n/a" if r.peak_mem_mib is None else f"{r.peak_mem_mib:.0f}"
    ci = "" if math.isnan(r.ci_low_ms) else f"{r.ci_low_ms:.1f}-{r.ci_high_ms:.1f}"
    return [
        r.model,
        r.backend,
        r.variant,
        r.device,
        r.dtype,
        str(r.batch),
        f"{r.median_ms:.1f}",
        ci,
        str(r.rounds),
        f"{r.images_per_s:.2f}",
        mem,
        f"{r.params_m:.2f}",
        f"{r.gflops:.1f}",
        r.note,
    ]


def best_per_model(results: list[Result], batch: int = 1) -> dict[str, tuple[Result, Result]]:
    """model -> (fastest inference row at ``batch``, its PyTorch eager fp32 row)."""
    out = {}
    for model in dict.fromkeys(r.model for r in results):
        rows = [
            r
            for r in results
            if r.model == model and r.kind == "inference" and r.batch == batch and r.ok
        ]
        eager = next(
            (
                r
                for r in rows
                if r.backend == "pytorch" and r.variant == "eager" and r.dtype == "fp32"
            ),
            None,
        )
        if rows and eager is not None:
            out[model] = (max(rows, key=lambda r: r.images_per_s), eager)
    return out


def ratio_over(slow: Result, fast: Result) -> tuple[float, float, float]:
    """``fast``'s speed-up over ``slow``: median of the per-round ratios and its 95 % interval
    when both were timed in the same interleaved rounds, else the ratio of the medians."""
    if slow.round_ms and len(slow.round_ms) == len(fast.round_ms):
        return paired_ratio(slow.round_ms, fast.round_ms)
    r = slow.median_ms / fast.median_ms
    return r, math.nan, math.nan


def best_lines(results: list[Result]) -> list[str]:
    """``best <model>: <N> img/s at batch 1 (<backend>), <R>x over PyTorch eager fp32 (95 % CI
    <a>-<b>)``, the ratio from the interleaved rounds."""
    lines = []
    for model, (best, eager) in best_per_model(results).items():
        ratio, low, high = ratio_over(eager, best)
        ci = "" if math.isnan(low) else f" (95 % CI {low:.2f}-{high:.2f})"
        lines.append(
            f"best {model}: {best.images_per_s:.1f} img/s at batch 1 ({best.label}), "
            f"{ratio:.2f}x over PyTorch eager fp32{ci}"
        )
    return lines


def versus_line(v: Versus) -> str:
    """``<model> over <reference> eager: Rx images/s at batch 1 (<best> vs PyTorch eager fp32,
    95 % CI a-b, N interleaved rounds)``."""
    if v.note.startswith(("OOM", "error")):
        return f"{v.model} over {v.reference} eager: not measured ({v.note})"
    cap = f"; {v.note}" if v.note else ""
    return (
        f"{v.model} over {v.reference} eager: {v.speedup:.2f}x images/s at batch 1 ({v.best} "
        f"{v.best_ms:.1f} ms vs PyTorch eager fp32 {v.reference_ms:.1f} ms; 95 % CI "
        f"{v.ci_low:.2f}-{v.ci_high:.2f}, {v.rounds} interleaved rounds{cap})"
    )


def fast_path_speedup(results: list[Result], model: str) -> dict[str, Any]:
    """``model``'s best fast path over eager (fp32, batch 1), from the same rounds."""
    rows = {
        r.variant: r
        for r in results
        if r.model == model and r.kind == "inference" and r.batch == 1 and r.dtype == "fp32"
        if r.backend == "pytorch" and r.ok
    }
    fast = next((v for v in ("fast+cudagraphs", "fast+compile", "fast") if v in rows), None)
    if "eager" not in rows or fast is None:
        return {}
    ratio, low, high = ratio_over(rows["eager"], rows[fast])
    return {
        "model": model,
        "fast_variant": fast,
        "slow_ms": rows["eager"].median_ms,
        "fast_ms": rows[fast].median_ms,
        "speedup": ratio,
        "ci": [low, high],
        "rounds": rows[fast].rounds,
    }


def layout_lines(results: list[Result]) -> list[str]:
    """``channels_last training step <model>: ...`` for each model timed in both layouts."""
    lines = []
    for model in dict.fromkeys(r.model for r in results):
        steps = {r.variant: r for r in results if r.model == model and r.kind == "train"}
        cl, nchw = steps.get("train+channels_last"), steps.get("train")
        if cl is not None and nchw is not None:
            lines.append(
                f"channels_last training step {model}: {cl.images_per_s:.2f} img/s vs "
                f"{nchw.images_per_s:.2f} img/s default layout ({cl.dtype}, batch {cl.batch}, "
                "interleaved steps), "
                f"{cl.images_per_s / nchw.images_per_s:.2f}x"
            )
    return lines


def fast_path_line(ratio: dict[str, Any]) -> str:
    """``fast-path speed-up: N.NNx (95 % CI a-b)``, the last line of ``make bench``."""
    if not ratio:
        return "fast-path speed-up: nanx (not measured)"
    low, high = ratio["ci"]
    ci = "" if math.isnan(low) else f" (95 % CI {low:.2f}-{high:.2f})"
    return f"fast-path speed-up: {ratio['speedup']:.2f}x{ci}"


def to_markdown(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        f"# Benchmark {meta['date']}",
        "",
        f"- device: {meta['device']}",
        f"- torch {meta['torch']}, onnxruntime {meta.get('onnxruntime', 'n/a')}, threads "
        f"{meta['threads']}, input {meta['input']}, memory: {meta['mem_kind']}",
        f"- load average (1/5/15 min) at the start {meta['load_average_at_start']}, at the end "
        f"{meta['load_average_at_end']} (other processes distort CPU timings)",
        "",
    ]
    for kind, title in (("inference", "Inference"), ("train", "Training step (fwd + bwd + SGD)")):
        rows = [r for r in results if r.kind == kind]
        if rows:
            lines += [f"## {title}", "", "| " + " | ".join(HEADERS) + " |"]
            lines += ["|" + "---|" * len(HEADERS)]
            lines += ["| " + " | ".join(row(r)) + " |" for r in rows]
            lines.append("")
    d = meta["speedup_detail"]
    if d:
        lines.append(
            f"Fast path = `{d['fast_variant']}`; speed-up over eager for {d['model']} (fp32, batch "
            f"1) from {d['rounds']} interleaved rounds: {d['slow_ms']:.1f} ms -> "
            f"{d['fast_ms']:.1f} ms, 95 % CI of the ratio {d['ci'][0]:.2f}-{d['ci'][1]:.2f}."
        )
        lines.append("")
    lines += [*meta["layout_lines"], ""] if meta.get("layout_lines") else []
    lines += [*meta["best_lines"], *meta.get("versus_lines", []), meta["fast_path_line"]]
    return "\n".join(lines) + "\n"


def print_table(results: list[Result], meta: dict[str, Any], console: Console) -> None:
    table = Table(title=f"{meta['input']} on {meta['device']} (memory: {meta['mem_kind']})")
    for h in HEADERS:
        left = h in ("model", "backend", "variant", "device", "dtype", "note")
        table.add_column(h, justify="left" if left else "right")
    for r in results:
        table.add_row(*row(r))
    console.print(table)


def plot_best(results: list[Result], path: Path) -> Path:
    """Images/s at batch 1 of each model's best backend against its GFLOPs, with PyTorch eager
    fp32 as hollow markers: the cost/speed trade-off at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (model, (best, eager)) in enumerate(best_per_model(results).items()):
        ax.scatter(
            best.gflops, best.images_per_s, color=f"C{i}", s=60, label=f"{model}: {best.label}"
        )
        ax.scatter(eager.gflops, eager.images_per_s, facecolors="none", edgecolors=f"C{i}", s=60)
        ax.plot(
            [eager.gflops, best.gflops],
            [eager.images_per_s, best.images_per_s],
            color=f"C{i}",
            alpha=0.4,
        )
        ax.annotate(
            model,
            (best.gflops, best.images_per_s),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
    ax.set_xlabel("GFLOPs per image")
    ax.set_ylabel("images / s at batch 1")
    ax.set_title("Best backend (filled) vs PyTorch eager fp32 (hollow)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(results: list[Result], meta: dict[str, Any], out: Path, plot: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md"}
    paths["json"].write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=2)
    )
    paths["markdown"].write_text(to_markdown(results, meta))
    if plot:
        paths["plot"] = plot_best(results, out / "best_backend.png")
    return paths
