"""``python -m lipnet_pl.models NAME``: parameters, GFLOPs, output stride (and LIP-Net's stage table).

Example: ``python -m lipnet_pl.models lipnet --size 473`` or
``python -m lipnet_pl.models deeplabv3plus --encoder mobilenet_v2 --size 473 513``.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from lipnet_pl.cli import ArgumentParser, argparse_command
from lipnet_pl.errors import UserError
from lipnet_pl.models import LIPNET_PRESETS, MODEL_NAMES, LIPNet, build_model
from lipnet_pl.models.summary import count_gflops, count_parameters, gflops_by_module


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m lipnet_pl.models",
        description="Print a model's parameters, GFLOPs and output stride (LIP-Net: per-stage table).",
    )
    p.add_argument("name", help=f"model name, one of {', '.join(MODEL_NAMES)}")
    p.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[473],
        metavar="N",
        help="input size: one value (square) or H W (default 473)",
    )
    p.add_argument("--num-classes", type=int, default=20, help="output classes (default 20, LIP)")
    p.add_argument(
        "--encoder",
        default="resnet18",
        help="smp peers only: encoder name, e.g. resnet18, mobilenet_v2, tu-mobilenetv3_small_100",
    )
    return p


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console()
    if len(args.size) not in (1, 2) or min(args.size) < 1:
        raise UserError(f"--size takes one or two positive integers (H [W]), got {args.size}")
    height, width = args.size[0], args.size[-1]
    kwargs = {} if args.name.lower() in LIPNET_PRESETS else {"encoder_name": args.encoder}
    try:
        model = build_model(args.name, num_classes=args.num_classes, **kwargs)
    except ValueError as err:
        raise UserError(str(err)) from None
    model.eval()
    params = count_parameters(model)
    gflops = count_gflops(model, height, width)
    label = args.name if not kwargs else f"{args.name} ({args.encoder})"
    console.print(f"model          {label}")
    console.print(f"parameters     {params / 1e6:.3f} M ({params:,})")
    console.print(f"GFLOPs         {gflops:.2f} at 1x3x{height}x{width} (multiply-add = 2 FLOPs)")
    console.print(f"output stride  {getattr(model, 'output_stride', '?')}")
    if isinstance(model, LIPNet):
        table = Table(title=f"LIP-Net parts at {height}x{width}")
        per_module = gflops_by_module(model, height, width)
        for col in ("part", "channels", "dilation", "stride", "resolution", "params", "GFLOPs"):
            table.add_column(col, justify="left" if col == "part" else "right")
        for row in model.stage_table(height, width):
            h, w = row["resolution"]
            table.add_row(
                row["name"],
                str(row["channels"]),
                str(row["dilation"]),
                str(row["stride"]),
                f"{h}x{w}",
                f"{row['params']:,}",
                f"{per_module.get(row['module'], 0.0):.2f}" if row["module"] else "-",
            )
        console.print(table)
    return 0


main = argparse_command(run)

if __name__ == "__main__":
    sys.exit(main())
