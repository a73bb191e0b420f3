"""The steps of ``make gpu-check``, each over the library's public functions (``train``,
``evaluate``, ``predict``, ``export``, the bench suite) with configs from
:func:`lipnet_pl.config.compose`. A failing step is recorded (with its traceback) and the others
still run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from lipnet_pl.benchmark.suite import run as run_bench
from lipnet_pl.config import compose
from lipnet_pl.core.loader import load_model
from lipnet_pl.core.metrics import percent
from lipnet_pl.data.layout import find_layout
from lipnet_pl.data.synthetic import generate
from lipnet_pl.evaluation.evaluate import evaluate
from lipnet_pl.exporting.export import export
from lipnet_pl.inference.predict import predict
from lipnet_pl.models import build_model
from lipnet_pl.models.fastpath import make_fast
from lipnet_pl.precision import auto_dtype
from lipnet_pl.training.train import train as fit

# the quick profile: what a short GPU loan must show (docs/benchmarks.md)
QUICK_BENCH = [
    "models=[lipnet,lipnet_rt]",
    "cuda.dtypes=[auto]",
    "onnxruntime.int8=[]",
    "x86_int8=[]",  # CPU-only rows (torchao pt2e, OpenVINO): nothing a GPU check measures
    "openvino=[]",
    "train_step=false",
]
FULL_BENCH = ["cuda.dtypes=[fp32,auto,fp16]"]


@dataclass(kw_only=True)
class Settings:
    """What one gpu-check run does (keyword fields: the CLI and tests name each one)."""

    out: Path  # this run's own folder: never reused, so nothing resumes
    device: str = "cuda"
    profile: str = "quick"  # quick | full
    size: int = 473
    images: int = 256
    train_batch: int = 32
    epochs: int = 2
    workers: int = 8
    bench: list[str] = field(default_factory=list)  # bench overrides of the profile
    net: list[str] = field(default_factory=list)  # model.net overrides of the training runs
    compile: bool = True
    skip: frozenset[str] = frozenset()  # steps left out (--skip)


@dataclass
class Step:
    name: str
    ok: bool = False
    seconds: float = 0.0
    lines: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)


def run_step(name: str, fn: Callable[[Step], None], steps: list[Step]) -> Step:
    """Run ``fn(step)``; a failure is recorded (with its traceback) instead of stopping."""
    step = Step(name)
    print(f"[gpu-check] {name} ...", flush=True)
    start = time.perf_counter()
    try:
        fn(step)
        step.ok = True
    except Exception:  # every failure belongs in the report
        step.lines += ["```", *traceback.format_exc().splitlines()[-25:], "```"]
    step.seconds = time.perf_counter() - start
    print(
        f"[gpu-check] {name}: {'ok' if step.ok else 'FAILED'} in {step.seconds:.0f} s", flush=True
    )
    steps.append(step)
    return step


def bench(s: Settings, step: Step) -> None:
    profile = QUICK_BENCH if s.profile == "quick" else FULL_BENCH
    overrides = [f"device={s.device}", f"size={s.size}", *profile, *s.bench]
    results, meta = run_bench(compose("bench", overrides), s.out / "bench")
    step.lines += (s.out / "bench" / "bench.md").read_text().splitlines()[1:]
    rows = [r for r in results if r.model == "lipnet" and r.kind == "inference" and r.ok]
    low = auto_dtype(s.device)
    b1 = [r for r in rows if r.batch == 1 and r.dtype == low and r.backend == "pytorch"]
    b64 = [r for r in rows if r.batch == 64 and r.dtype == low]
    if b1:
        step.numbers["latency_b1_ms"] = min(r.median_ms for r in b1)
    if b64:
        step.numbers["inference_b64_img_s"] = max(r.images_per_s for r in b64)
    step.numbers["fast_path_speedup"] = meta["fast_path_speedup"]


def synthetic_root(s: Settings) -> Path:
    root = s.out / "synthetic_lip"
    if not (root / "synthetic.json").is_file():
        n = s.images
        generate(root, train=n, val=max(8, n // 8), test=8, seed=0, style="context")
    return root


def train_overrides(
    s: Settings, out: Path, compiled: bool, trainer: str, augment_on: str = "device"
) -> list[str]:
    """``conf/train.yaml`` for a gpu-check training run into ``out`` (never resumed)."""
    return [
        "experiment=demo",
        f"data.root={synthetic_root(s)}",
        "data.synthetic=null",
        f"data.crop_size=[{s.size},{s.size}]",
        f"data.batch_size={s.train_batch}",
        f"data.num_workers={s.workers}",
        f"data.augment_on={augment_on}",
        f"trainer={trainer}",
        f"trainer.max_epochs={s.epochs}",
        f"module.compile={str(compiled).lower()}",
        "module.channels_last=true",
        "logger=none",
        "resume=never",
        f"paths.output_dir={out}",
        *s.net,
    ]


def train(s: Settings, step: Step, compiled: bool) -> None:
    """The training run (``augment_on=device``); uncompiled, also one with ``augment_on=workers``
    so the report shows what moving the augmentation to the GPU buys in wall-clock img/s."""
    trainer = "gpu" if s.device == "cuda" else "cpu"  # gpu: precision auto
    paths = ("device",) if compiled else ("device", "workers")
    for path in paths:
        out = s.out / (
            ("train_compiled" if compiled else "train") + ("" if path == "device" else "_workers")
        )
        summary = fit(compose("train", train_overrides(s, out, compiled, trainer, path)))
        suffix = "" if path == "device" else f"_{path}"
        step.numbers.update(
            {
                f"train_img_s{suffix}": summary["train_images_per_s"],
                f"wall_img_s{suffix}": summary["train_images_per_s_wall"],
                f"data_wait_share{suffix}": summary["data_wait_share"],
                f"steps_this_run{suffix}": summary["steps_this_run"],
            }
        )
        step.lines.append(
            f"{'compiled' if compiled else 'eager'}, {auto_dtype(s.device)}, "
            f"data.augment_on={path}: {_num(summary['train_images_per_s_wall'])} img/s wall "
            f"clock, {_num(summary['train_images_per_s'])} img/s in the training steps, data "
            f"wait {_num(summary['data_wait_share'], '.0%')} ({s.workers} loader workers, "
            f"{summary['cpu_cores']} CPU cores); {summary['steps_this_run']} steps run, the "
            "first 3 not timed"
        )
        if path == "device":
            step.numbers.update(
                peak_mem_mib=summary.get("peak_gpu_mem_mib"),
                val_miou=summary["best_val_miou"],
                checkpoint=summary["last_ckpt"],
            )
            step.lines.append(
                f"peak {summary.get('peak_gpu_mem_mib')} MiB over the memory in use at the "
                f"start, val mIoU {percent(summary['best_val_miou'])}"
            )


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def eval_predict(s: Settings, step: Step, ckpt: str) -> None:
    root = synthetic_root(s)
    results = evaluate(
        compose(
            "eval",
            [
                "data=synthetic",
                f"data.root={root}",
                "data.synthetic=null",
                "trainer=gpu" if s.device == "cuda" else "trainer=cpu",
                "trainer.precision=32-true",
                f"ckpt_path={ckpt}",
                f"paths.output_dir={s.out / 'eval'}",
            ],
        )
    )
    step.lines.append(f"eval (flip TTA, fp32): val mIoU {percent(results['miou'])}")
    video = make_video(s.out / "clip.mp4", s.size)
    images = sorted(find_layout(root)["test"].image_dir.glob("*.jpg"))[:8]
    inputs = ",".join(map(str, [*images, video]))
    out = s.out / "predict"
    report = predict(
        compose(
            "predict",
            [
                f"ckpt_path={ckpt}",
                f"input=[{inputs}]",
                f"device={s.device}",
                f"output={out}",
                f"paths.output_dir={out}",
            ],
        )
    )
    stats = next(iter(report.video_stats.values()))
    step.numbers.update(
        miou=results["miou"],
        video_fps=stats["end_to_end_fps"],
        model_fps=stats["isolated_model_fps"],
    )
    step.lines.append(
        f"predict: {report.images} images; video {stats['frames']} frames, isolated model FPS "
        f"{stats['isolated_model_fps']:.1f}, end-to-end FPS {stats['end_to_end_fps']:.1f}"
    )


def make_video(path: Path, size: int, frames: int = 60) -> Path:
    import av  # optional (the video extra): kept out of start-up
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = size - size % 2
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(frames):
            frame = rng.integers(0, 256, (stream.height, stream.width, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def onnx_parity(s: Settings, step: Step, ckpt: str) -> None:
    out, diffs = export(
        compose(
            "export",
            [
                f"ckpt_path={ckpt}",
                "dynamic=true",
                f"output={s.out / 'model.onnx'}",
                f"paths.output_dir={s.out / 'export'}",
            ],
        )
    )
    step.lines.append(f"export parity (ONNX Runtime CPU): max abs diff {max(diffs):.2e}")
    net = load_model(ckpt, device=s.device).net
    session = load_model(out, device=s.device).net
    x = torch.randn(2, 3, s.size, s.size, device=s.device)
    with torch.no_grad():
        diff = float((session(x).to(x.device) - net(x)).abs().max())
    step.lines.append(
        f"ONNX Runtime on {session.device} (providers that ran: {session.providers}) vs "
        f"PyTorch on {s.device}: max abs diff {diff:.2e}"
    )
    step.numbers.update(onnx_parity=diff, onnx_device=str(session.device))


WARMUP_STEPS = 3  # conf/callbacks/default.yaml throughput.warmup_steps: not timed
TIMED_STEPS = 10  # at least this many timed steps, whatever the number of GPUs


def ddp_plan(s: Settings, gpus: int, cpus: int) -> dict[str, int]:
    """Loader workers per rank (from the CPUs this process may use), the global batch, and
    enough epochs that the run times at least :data:`TIMED_STEPS` steps after the warm-up (on 8
    GPUs 256 images are one step per epoch at batch 32 per GPU)."""
    batch = s.train_batch * gpus
    per_epoch = max(1, s.images // batch)
    epochs = max(s.epochs, -(-(WARMUP_STEPS + TIMED_STEPS) // per_epoch))
    return {"workers": max(1, min(s.workers, cpus // gpus)), "batch": batch, "epochs": epochs}


def child_env(environ: dict[str, str]) -> dict[str, str]:
    """The environment of the DDP child without ``SLURM_*``: inside an allocation Lightning
    would take the ranks from SLURM (one task here) and refuse or wait for the others."""
    return {k: v for k, v in environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_"))}


def ddp(s: Settings, step: Step) -> None:
    """DDP over every GPU. A subprocess of ``python -m lipnet_pl.train``: Lightning's DDP
    launcher starts the other ranks by re-running the current script."""
    n = torch.cuda.device_count()
    out = s.out / "ddp"
    plan = ddp_plan(s, n, len(os.sched_getaffinity(0)))  # the job's CPU set, not the node's
    args = train_overrides(replace(s, workers=plan["workers"]), out, False, "ddp")
    args = [a for a in args if not a.startswith(("paths.output_dir", "trainer.max_epochs"))]
    args += [f"trainer.devices={n}", f"hydra.run.dir={out}", f"data.batch_size={plan['batch']}"]
    args += [f"trainer.max_epochs={plan['epochs']}"]
    command = [sys.executable, "-m", "lipnet_pl.train", *args]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=3600, env=child_env(dict(os.environ))
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    summary = json.loads((out / "run_summary.json").read_text())
    step.numbers["train_img_s"] = summary["train_images_per_s"]
    speed = summary["train_images_per_s"]
    step.lines.append(
        f"DDP over {n} GPUs ({plan['workers']} loader workers each, {plan['epochs']} epochs): "
        + (f"{speed:.1f} train img/s (all GPUs)" if speed is not None else "no timed step")
    )


def profile_inference(s: Settings, step: Step) -> None:
    device = torch.device(s.device)
    net = make_fast(build_model("lipnet").to(device))
    x = torch.randn(1, 3, s.size, s.size, device=device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(auto_dtype(device))
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=bool(dtype)):
        for _ in range(5):
            net(x)
        with profile(activities=activities) as prof:
            for _ in range(10):
                net(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    step.lines += ["```", *prof.key_averages().table(sort_by=key, row_limit=15).splitlines(), "```"]
