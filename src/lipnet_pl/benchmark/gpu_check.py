"""``make gpu-check``: run every CUDA path lipnet_pl ships, once, and write a Markdown report.

    python -m lipnet_pl.benchmark.gpu_check [--out gpu_check] [--images 256] [--no-compile]

Steps (each timed; a failing step is reported and the others still run):

1. ``bench``: LIP-Net, lipnet_rt and the smp peers; fp32 and bf16, batch 1 and 64, eager / fast
   path / torch.compile with CUDA graphs, ONNX Runtime;
2. training: a short bf16 channels_last run on synthetic data at 473x473, compile off and on
   (train images/s, peak memory);
3. ``eval`` and ``predict`` (images and a video) on the GPU with the trained checkpoint;
4. ONNX export and its parity on CUDA (ONNX Runtime's CUDA provider when installed);
5. DDP over all visible GPUs when there are two or more;
6. a torch profiler table of LIP-Net batch-1 bf16 inference (where the time goes).

The report compares with the goals at 473x473 bf16 on an H100/H200: batch-1 latency <= 1.5 ms
(CUDA graphs), batch-64 inference >= 3000 img/s, training >= 1000 img/s on one GPU. Without CUDA
it stops within seconds with one line and exit status 2. ``--cpu-smoke`` runs the same steps
tiny on the CPU (to test this script, not to measure anything).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipnet_pl.cli import ArgumentParser, argparse_command
from lipnet_pl.errors import UserError

GOALS = {"latency_b1_ms": 1.5, "inference_b64_img_s": 3000.0, "train_img_s": 1000.0}


@dataclass
class Settings:
    out: Path
    device: str = "cuda"
    size: int = 473
    images: int = 256
    train_batch: int = 32
    epochs: int = 1
    bench: list[str] = field(default_factory=lambda: [])
    compile: bool = True


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


def compose(name: str, overrides: list[str]):
    from lipnet_pl.config import compose as compose_config

    return compose_config(name, overrides)


def step_bench(s: Settings, step: Step) -> None:
    from lipnet_pl.benchmark.suite import run

    overrides = [
        f"device={s.device}",
        f"size={s.size}",
        f"paths.output_dir={s.out / 'bench'}",
        *s.bench,
    ]
    results, meta = run(compose("bench", overrides), s.out / "bench")
    step.lines += (s.out / "bench" / "bench.md").read_text().splitlines()[1:]
    rows = [r for r in results if r.model == "lipnet" and r.kind == "inference"]
    b1 = [r for r in rows if r.batch == 1 and r.dtype == "bf16" and r.backend == "pytorch"]
    b64 = [r for r in rows if r.batch == 64 and r.dtype == "bf16"]
    if b1:
        step.numbers["latency_b1_ms"] = min(r.median_ms for r in b1)
    if b64:
        step.numbers["inference_b64_img_s"] = max(r.images_per_s for r in b64)
    step.numbers["fast_path_speedup"] = meta["fast_path_speedup"]


def synthetic_root(s: Settings) -> Path:
    from lipnet_pl.data.synthetic import generate

    root = s.out / "synthetic_lip"
    if not (root / "synthetic.json").is_file():
        n = s.images
        generate(root, train=n, val=max(8, n // 8), test=8, seed=0, style="context")
    return root


def train_overrides(s: Settings, root: Path, out: Path, compiled: bool) -> list[str]:
    gpu = s.device == "cuda"
    return [
        "experiment=demo",
        f"data.root={root}",
        "data.synthetic=null",
        f"data.crop_size=[{s.size},{s.size}]",
        f"data.batch_size={s.train_batch}",
        "data.num_workers=8" if gpu else "data.num_workers=0",
        "trainer=gpu" if gpu else "trainer=cpu",
        *(["trainer.precision=bf16-mixed"] if gpu else []),
        f"trainer.max_epochs={s.epochs}",
        f"module.compile={str(compiled).lower()}",
        "module.channels_last=true",
        "logger=none",
        f"paths.output_dir={out}",
    ]


def step_train(s: Settings, step: Step, compiled: bool) -> None:
    from lipnet_pl.training.run import train

    out = s.out / ("train_compiled" if compiled else "train")
    summary = train(compose("train", train_overrides(s, synthetic_root(s), out, compiled)))
    step.numbers = {
        "train_img_s": summary["train_images_per_s"],
        "peak_mem_mib": summary.get("peak_gpu_mem_mib"),
        "val_miou": summary["best_val_miou"],
        "checkpoint": summary["last_ckpt"],
    }
    step.lines.append(
        f"{'compiled' if compiled else 'eager'}: {summary['train_images_per_s']:.1f} train img/s, "
        f"peak {summary.get('peak_gpu_mem_mib')} MiB, val mIoU {summary['best_val_miou']:.3f}"
    )


def step_eval_predict(s: Settings, step: Step, ckpt: str) -> None:
    from lipnet_pl.evaluation.evaluate import evaluate
    from lipnet_pl.inference.predict import run_predict

    root = synthetic_root(s)
    trainer = "trainer=gpu" if s.device == "cuda" else "trainer=cpu"
    results = evaluate(
        compose(
            "eval",
            [
                "data=synthetic",
                f"data.root={root}",
                "data.synthetic=null",
                trainer,
                f"ckpt_path={ckpt}",
                f"paths.output_dir={s.out / 'eval'}",
            ],
        )
    )
    step.lines.append(f"eval (flip TTA, fp32): val mIoU {results['miou']:.3f}")
    video = make_video(s.out / "clip.mp4", s.size)
    images = sorted((root / "Testing_images" / "testing_images").glob("*.jpg"))[:8]
    report = run_predict(
        compose(
            "predict",
            [
                f"ckpt_path={ckpt}",
                f"input=[{','.join(map(str, [*images, video]))}]",
                f"device={s.device}",
                f"output={s.out / 'predict'}",
                f"paths.output_dir={s.out / 'predict'}",
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
    import av
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


def step_onnx(s: Settings, step: Step, ckpt: str) -> None:
    import onnxruntime
    import torch

    from lipnet_pl.core.loader import load_model
    from lipnet_pl.core.model_export import export
    from lipnet_pl.core.onnx_runtime import OnnxRuntimeNet

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
    providers = onnxruntime.get_available_providers()
    net = load_model(ckpt, device=s.device).net
    session = OnnxRuntimeNet(out, device=s.device)
    x = torch.randn(2, 3, s.size, s.size, device=s.device)
    with torch.no_grad():
        diff = float((session(x).to(x.device) - net(x)).abs().max())
    where = "CUDA" if "CUDAExecutionProvider" in providers and s.device == "cuda" else "CPU"
    step.lines.append(
        f"ONNX Runtime ({where} provider; available: {providers}) vs PyTorch on {s.device}: max abs diff {diff:.2e}"
    )
    step.numbers["onnx_parity"] = diff


def step_ddp(s: Settings, step: Step) -> None:
    import torch

    n = torch.cuda.device_count()
    args = [
        sys.executable,
        "-m",
        "lipnet_pl.train",
        *train_overrides(s, synthetic_root(s), s.out / "ddp", False),
    ]
    args = [a for a in args if not a.startswith(("trainer=", "paths.output_dir"))]
    args += [
        "trainer=ddp",
        f"trainer.devices={n}",
        f"hydra.run.dir={s.out / 'ddp'}",
        f"data.batch_size={s.train_batch * n}",
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    summary = json.loads((s.out / "ddp" / "run_summary.json").read_text())
    step.numbers["train_img_s"] = summary["train_images_per_s"]
    step.lines.append(
        f"DDP over {n} GPUs: {summary['train_images_per_s']:.1f} train img/s (all GPUs)"
    )


def step_profile(s: Settings, step: Step) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lipnet_pl.models import build_model
    from lipnet_pl.models.fastpath import make_fast

    device = torch.device(s.device)
    net = make_fast(build_model("lipnet").to(device))
    x = torch.randn(1, 3, s.size, s.size, device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype):
        for _ in range(5):
            net(x)
        with profile(activities=activities) as prof:
            for _ in range(10):
                net(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    step.lines += ["```", *prof.key_averages().table(sort_by=key, row_limit=15).splitlines(), "```"]


def versions(device: str) -> list[str]:
    import torch

    import lipnet_pl

    try:
        import onnxruntime

        ort = onnxruntime.__version__
    except ImportError:
        ort = "not installed"
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU smoke run)"
    count = torch.cuda.device_count() if device == "cuda" else 0
    return [
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- GPU: {gpu} x {count}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}",
        f"- lipnet_pl {lipnet_pl.__version__}, torch {torch.__version__}, onnxruntime {ort}, "
        f"Python {platform.python_version()}, {platform.machine()}",
    ]


def goal_lines(steps: list[Step]) -> list[str]:
    found: dict[str, float] = {}
    for step in steps:
        for key in GOALS:
            if isinstance(step.numbers.get(key), int | float):
                best = found.get(key)
                value = step.numbers[key]
                better = value < best if key.startswith("latency") else value > (best or 0)
                found[key] = value if best is None or better else best
    lines = ["| goal | target | measured | met |", "|---|---|---|---|"]
    for key, target in GOALS.items():
        got = found.get(key)
        met = got is not None and (got <= target if key.startswith("latency") else got >= target)
        shown = "not measured" if got is None else f"{got:.2f}"
        lines.append(f"| {key} | {target} | {shown} | {'yes' if met else 'no'} |")
    return lines


def write_report(s: Settings, steps: list[Step]) -> Path:
    lines = [
        "# GPU check",
        "",
        *versions(s.device),
        "",
        "## Goals (473x473, bf16)",
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
        json.dumps([vars(x) | {"lines": x.lines} for x in steps], indent=2, default=str)
    )
    return path


def check(s: Settings) -> list[Step]:
    import torch

    steps: list[Step] = []
    run_step("bench", lambda st: step_bench(s, st), steps)
    trained = run_step("training (bf16, channels_last)", lambda st: step_train(s, st, False), steps)
    if s.compile:
        run_step(
            "training (bf16, channels_last, torch.compile)",
            lambda st: step_train(s, st, True),
            steps,
        )
    ckpt = trained.numbers.get("checkpoint")
    if ckpt:
        run_step("eval and predict", lambda st: step_eval_predict(s, st, ckpt), steps)
        run_step("ONNX export and parity", lambda st: step_onnx(s, st, ckpt), steps)
    if s.device == "cuda" and torch.cuda.device_count() >= 2:
        run_step("DDP", lambda st: step_ddp(s, st), steps)
    run_step("profile of LIP-Net batch-1 inference", lambda st: step_profile(s, st), steps)
    return steps


def run(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m lipnet_pl.benchmark.gpu_check", description=__doc__.split("\n")[0]
    )
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    p.add_argument("--images", type=int, default=256, help="synthetic training images")
    p.add_argument(
        "--cpu-smoke", action="store_true", help="tiny run on the CPU (tests this script)"
    )
    p.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile training run (minutes)"
    )
    args = p.parse_args(argv)
    import torch

    if args.cpu_smoke:
        s = Settings(
            args.out,
            "cpu",
            64,
            8,
            2,
            1,
            [
                "models=[lipnet]",
                "cpu.repeats=1",
                "cpu.warmup=0",
                "cpu.compile=[]",
                "speedup_pairs=1",
                "onnxruntime.int8=[]",
            ],
        )
    elif not torch.cuda.is_available():
        raise UserError(
            "gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here: run it on a GPU machine"
        )
    else:
        s = Settings(args.out, images=args.images)
    s.compile = not args.no_compile
    s.out.mkdir(parents=True, exist_ok=True)
    steps = check(s)
    report = write_report(s, steps)
    print(f"[gpu-check] report: {report}")
    return 0 if all(step.ok for step in steps) else 1


main = argparse_command(run)

if __name__ == "__main__":
    sys.exit(main())
