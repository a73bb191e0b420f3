"""The ``make gpu-check`` report: versions, the goals table and every step, as Markdown + JSON."""

from __future__ import annotations

import datetime as dt
import json
import platform
from pathlib import Path

import torch

import lipnet_pl
from lipnet_pl.precision import auto_dtype
from lipnet_pl.workflows.gpu_steps import Settings, Step

# at 473x473 in the auto precision on one H100/H200
GOALS = {"latency_b1_ms": 1.5, "inference_b64_img_s": 3000.0, "train_img_s": 1000.0}


def versions(s: Settings) -> list[str]:
    try:
        import onnxruntime  # optional (the export extra)

        ort = f"{onnxruntime.__version__} (providers {onnxruntime.get_available_providers()})"
    except ImportError:
        ort = "not installed"
    cuda = s.device == "cuda"
    gpu = torch.cuda.get_device_name(0) if cuda else "none (CPU smoke run)"
    count = torch.cuda.device_count() if cuda else 0
    return [
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- profile: {s.profile}; precision auto -> {auto_dtype(s.device)}",
        f"- GPU: {gpu} x {count}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}",
        f"- lipnet_pl {lipnet_pl.__version__}, torch {torch.__version__}, onnxruntime {ort}, "
        f"Python {platform.python_version()}, {platform.machine()}",
    ]


def best_of(steps: list[Step]) -> dict[str, float]:
    """Each goal's best measured value over the steps (lowest latency, highest rates)."""
    found: dict[str, float] = {}
    for step in steps:
        for key in GOALS:
            value = step.numbers.get(key)
            if not isinstance(value, int | float):
                continue
            best = found.get(key)
            if best is None or (value < best if key.startswith("latency") else value > best):
                found[key] = value
    return found


def goal_lines(steps: list[Step]) -> list[str]:
    found = best_of(steps)
    lines = ["| goal | target | measured | met |", "|---|---|---|---|"]
    for key, target in GOALS.items():
        got = found.get(key)
        met = got is not None and (got <= target if key.startswith("latency") else got >= target)
        shown = "not measured" if got is None else f"{got:.2f}"
        lines.append(f"| {key} | {target} | {shown} | {'yes' if met else 'no'} |")
    return lines


def write_report(s: Settings, steps: list[Step]) -> Path:
    """``gpu_check.md`` and ``gpu_check.json`` in the run's folder; returns the Markdown path."""
    lines = [
        "# GPU check",
        "",
        *versions(s),
        "",
        f"## Goals ({s.size}x{s.size}, {auto_dtype(s.device)})",
        "",
        *goal_lines(steps),
        "",
    ]
    for step in steps:
        lines += [
            f"## {step.name}: {'ok' if step.ok else 'FAILED'} ({step.seconds:.0f} s)",
            "",
            *step.lines,
            "",
        ]
    path = s.out / "gpu_check.md"
    path.write_text("\n".join(lines) + "\n")
    (s.out / "gpu_check.json").write_text(
        json.dumps([vars(x) for x in steps], indent=2, default=str)
    )
    return path
