"""LIP data tools: ``python -m lipnet_pl.data {prepare,check,bench}``.

* ``prepare ZIP_DIR OUT``: the official zips -> the flat layout (:mod:`.prepare`).
* ``check ROOT``: counts per split and every problem; exit 1 on errors (:mod:`.check`).
* ``bench ROOT``: img/s per worker of both data paths (``augment_on=workers|device``),
  the device side's ms per image and the JPEG decoders (:mod:`.loader_bench`).

Usage errors and bad inputs print one line and exit 2, like every lipnet_pl command.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lipnet_pl.cli import ArgumentParser, argparse_command
from lipnet_pl.data.classes import NUM_LIP_CLASSES


def run(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m lipnet_pl.data", description="LIP data tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="official LIP zips -> flat layout")
    p.add_argument("zip_dir", type=Path, help="folder holding TrainVal_images.zip etc.")
    p.add_argument("out", type=Path, help="output root (flat layout)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    c = sub.add_parser("check", help="validate a LIP root and print a summary")
    c.add_argument("root", type=Path)
    c.add_argument("--num-classes", type=int, default=NUM_LIP_CLASSES)
    c.add_argument("--max-list", type=int, default=20, help="problems listed per kind")
    b = sub.add_parser("bench", help="train data path speed (img/s per worker, both paths)")
    b.add_argument("root", type=Path)
    b.add_argument("--workers", type=int, default=0)
    b.add_argument("--crop", type=int, default=473)
    b.add_argument("--samples", type=int, default=200, help="images per timed run")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--batch-size", type=int, default=8)
    b.add_argument(
        "--device",
        default="auto",
        help="where the device-side augmentation is timed (auto: cuda if any)",
    )
    args = parser.parse_args(argv)
    # each tool imported once chosen: --help and usage errors answer without torch
    if args.command == "prepare":
        from lipnet_pl.data.prepare import prepare

        return prepare(args.zip_dir, args.out, force=args.force)
    if args.command == "check":
        from lipnet_pl.data.check import check

        return check(args.root, num_classes=args.num_classes, max_list=args.max_list)
    from lipnet_pl.data.loader_bench import bench

    bench(args.root, args.workers, args.crop, args.samples, args.runs, args.batch_size, args.device)
    return 0


main = argparse_command(run)

if __name__ == "__main__":
    sys.exit(main())
