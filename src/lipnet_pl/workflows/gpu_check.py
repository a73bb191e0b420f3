"""``make gpu-check``: every CUDA path lipnet_pl ships, once, into a Markdown report.

    python -m lipnet_pl.workflows.gpu_check [--profile quick|full] [--skip bench,ddp,...]
        [--out DIR] [--images 256]

Each run writes into a new folder ``<out>/<date_time>/`` (never resumed, never reusing an
earlier run's results). The **quick** profile (default; at most ~8 minutes on one H100/H200):
the bench of LIP-Net and lipnet_rt at batch 1 and 64 in the ``auto`` precision (bf16, or fp16 on
GPUs without bf16 in hardware) with compile + CUDA graphs and ONNX Runtime fp32; two training
runs (``data.augment_on=device`` and ``workers``: wall-clock and step-only img/s, data-wait
share); eval and predict (images and a video) on the GPU; ONNX export and parity. The
**full** profile adds every bench model in fp32/auto/fp16 with int8 rows and training steps, the
compiled training run, DDP over all GPUs when there are two or more, and a profiler table.

The report compares with the goals at 473x473 on an H100/H200: batch-1 latency <= 1.5 ms
(CUDA graphs), batch-64 inference >= 3000 img/s, training >= 1000 img/s on one GPU. Without CUDA
it stops within seconds with one line and exit status 2. ``--cpu-smoke`` runs the quick steps
tiny on the CPU (to test this script, not to measure anything): 64x64 inputs, 8 images, a narrow
LIP-Net (the paper's layout at a fraction of its widths) trained, evaluated and exported, and
the bench of LIP-Net without its ONNX Runtime rows (ONNX export and ONNX Runtime run in the ONNX
step: a second export would double the smoke run's longest part).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lipnet_pl.cli import ArgumentParser, argparse_command
from lipnet_pl.errors import UserError

if TYPE_CHECKING:  # torch and the steps load once the arguments are read: --help is instant
    from lipnet_pl.workflows.gpu_steps import Settings, Step

CPU_SMOKE_BENCH = [
    "models=[lipnet]",
    "cpu.min_rounds=2",
    "cpu.max_rounds=2",
    "cpu.warmup=0",
    "cpu.compile=[]",
    "cpu.batch_sizes=[1]",
    "onnxruntime.enabled=false",
    "onnxruntime.int8=[]",
    "openvino=[]",
]
CPU_SMOKE_NET = [  # the paper's LIP-Net layout, narrow: every layer, ~1/20 of the FLOPs
    "model.net.stem_channels=8",
    "model.net.widths=[8,8,16,16,32,32]",
    "model.net.aspp_channels=32",
    "model.net.decoder_channels=32",
    "model.net.skip_channels=8",
]


STEPS = ("bench", "train", "eval", "onnx", "ddp", "profile")


def check(s: Settings) -> list[Step]:
    """Run the steps of ``s.profile`` not in ``s.skip``; a failing step is reported and the
    others still run."""
    import torch

    from lipnet_pl.workflows import gpu_steps as steps_
    from lipnet_pl.workflows.gpu_steps import run_step

    steps: list[Step] = []
    full = s.profile == "full"

    def want(name: str, in_quick: bool = True) -> bool:
        return name not in s.skip and (full or in_quick)

    if want("bench"):
        run_step("bench", lambda st: steps_.bench(s, st), steps)
    ckpt = None
    if want("train"):
        trained = run_step("training (channels_last)", lambda st: steps_.train(s, st, False), steps)
        ckpt = trained.numbers.get("checkpoint")
        if full and s.compile:
            run_step(
                "training (channels_last, torch.compile)",
                lambda st: steps_.train(s, st, True),
                steps,
            )
    if ckpt and want("eval"):
        run_step("eval and predict", lambda st: steps_.eval_predict(s, st, ckpt), steps)
    if ckpt and want("onnx"):
        run_step("ONNX export and parity", lambda st: steps_.onnx_parity(s, st, ckpt), steps)
    if want("ddp", False) and s.device == "cuda" and torch.cuda.device_count() >= 2:
        run_step("DDP", lambda st: steps_.ddp(s, st), steps)
    if want("profile", False):
        name = "profile of LIP-Net batch-1 inference"
        run_step(name, lambda st: steps_.profile_inference(s, st), steps)
    return steps


def new_run_dir(out: Path) -> Path:
    """``out/<UTC date_time>``, suffixed when two runs start in the same second."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d_%H-%M-%S")
    path, n = out / stamp, 1
    while path.exists():
        n += 1
        path = out / f"{stamp}_{n}"
    path.mkdir(parents=True)
    return path


def settings(args) -> Settings:
    import torch

    from lipnet_pl.workflows.gpu_steps import Settings

    skip = skipped(args.skip)
    if args.cpu_smoke:
        return Settings(
            out=new_run_dir(args.out),
            device="cpu",
            profile=args.profile,
            size=64,
            images=8,
            train_batch=2,
            epochs=1,
            workers=0,
            bench=CPU_SMOKE_BENCH,
            net=CPU_SMOKE_NET,
            compile=not args.no_compile,
            skip=skip,
        )
    if not torch.cuda.is_available():
        raise UserError(
            "gpu-check needs a CUDA GPU and torch.cuda.is_available() is False here: run it on a GPU machine"
        )
    return Settings(
        out=new_run_dir(args.out),
        profile=args.profile,
        images=args.images,
        compile=not args.no_compile,
        skip=skip,
    )


def skipped(text: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    unknown = sorted(names - set(STEPS))
    if unknown:
        raise UserError(f"--skip {text}: unknown steps {unknown}: use a comma list of {STEPS}")
    return names


def run(argv: list[str] | None = None) -> int:
    p = ArgumentParser(
        prog="python -m lipnet_pl.workflows.gpu_check", description=__doc__.split("\n")[0]
    )
    p.add_argument("--profile", choices=["quick", "full"], default="quick")
    p.add_argument("--out", type=Path, default=Path("outputs/gpu_check"))
    p.add_argument("--images", type=int, default=256, help="synthetic training images")
    p.add_argument("--skip", default="", help=f"comma list of steps to leave out: {STEPS}")
    p.add_argument(
        "--cpu-smoke", action="store_true", help="tiny run on the CPU (tests this script)"
    )
    p.add_argument(
        "--no-compile", action="store_true", help="skip the torch.compile training run (full)"
    )
    s = settings(p.parse_args(argv))
    from lipnet_pl.workflows.gpu_report import write_report

    steps = check(s)
    print(f"[gpu-check] report: {write_report(s, steps)}")
    return 0 if all(step.ok for step in steps) else 1


main = argparse_command(run)

if __name__ == "__main__":
    sys.exit(main())
