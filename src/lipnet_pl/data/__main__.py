"""LIP data tools: ``python -m lipnet_pl.data {prepare,check,bench}``.

* ``prepare ZIP_DIR OUT``: the official zips (TrainVal_images.zip, TrainVal_parsing_annotations.zip
  with its nested zip, Testing_images.zip) -> the flat layout in OUT (written to a temporary
  folder, then renamed; a non-empty OUT is refused unless --force).
* ``check ROOT``: counts per split and every problem (missing/unreadable files, label values
  outside 0..num_classes-1 and 255, size mismatches); non-RGB images are warnings. Exit 1 on errors.
* ``bench ROOT``: speed of the train pipeline, printed as ``train pipeline: N img/s per worker``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import Progress, track
from rich.table import Table
from rich.text import Text

from lipnet_pl.data.classes import IGNORE_INDEX, NUM_LIP_CLASSES
from lipnet_pl.data.dataset import DataFileError, decode_label
from lipnet_pl.data.layout import ID_FILES, find_layout
from lipnet_pl.data.synthetic import make_staging_dir

console = Console(highlight=False)
ZIP_NAMES = ("TrainVal_images.zip", "TrainVal_parsing_annotations.zip", "Testing_images.zip")
FLAT_DIRS = (
    "train_images",
    "val_images",
    "testing_images",
    "train_segmentations",
    "val_segmentations",
)


def _say(level: str, message: str) -> None:
    """Print ``level: message`` without interpreting brackets in paths/values as rich markup."""
    colour = {"error": "red", "warning": "yellow"}.get(level, "")
    console.print(Text.assemble((f"{level}: ", colour), str(message)), soft_wrap=True)


# --------------------------------------------------------------------------- prepare
def _target(member: str) -> Path | None:
    """Flat-layout path of a zip member, or None for members we do not keep (pose CSVs, ...)."""
    parts = [p for p in member.replace("\\", "/").split("/") if p]
    if not parts or "__MACOSX" in parts or parts[-1].startswith("."):
        return None
    if parts[-1] in ID_FILES.values():
        return Path(parts[-1])
    for i, part in enumerate(parts[:-1]):
        if part in FLAT_DIRS:
            return Path(part, *parts[i + 1 :])
    return None


def _extract(
    zf: zipfile.ZipFile, out: Path, progress: Progress, scratch: Path, counts: dict
) -> None:
    members = [m for m in zf.infolist() if not m.is_dir()]
    task = progress.add_task(f"{Path(zf.filename or 'nested zip').name}", total=len(members))
    for info in members:
        if info.filename.lower().endswith(".zip"):
            nested = scratch / Path(info.filename).name
            with zf.open(info) as src, nested.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            with zipfile.ZipFile(nested) as inner:
                _extract(inner, out, progress, scratch, counts)
            nested.unlink()
        else:
            target = _target(info.filename)
            if target is None:
                counts["skipped"] += 1
            else:
                dest = out / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                counts[target.parts[0] if len(target.parts) > 1 else "id files"] += 1
        progress.advance(task)


def prepare(zip_dir: Path, out: Path, force: bool = False) -> int:
    zip_dir, out = Path(zip_dir), Path(out)
    zips = {name: zip_dir / name for name in ZIP_NAMES}
    missing = [n for n in ZIP_NAMES[:2] if not zips[n].is_file()]
    if missing:
        _say(
            "error",
            f"{zip_dir} lacks {', '.join(missing)}: download the LIP zips from the official site "
            "(see data/README.md) into one folder",
        )
        return 2
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        _say("error", f"{out} exists and is not empty: choose another OUT or pass --force")
        return 2
    if not zips["Testing_images.zip"].is_file():
        _say("warning", f"{zips['Testing_images.zip']} not found: no test split")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_staging_dir(out)
    counts: dict[str, int] = defaultdict(int)
    try:
        with (
            tempfile.TemporaryDirectory(dir=out.parent) as scratch,
            Progress(console=console) as progress,
        ):
            for path in zips.values():
                if not path.is_file():
                    continue
                try:
                    with zipfile.ZipFile(path) as zf:
                        _extract(zf, tmp, progress, Path(scratch), counts)
                except zipfile.BadZipFile as err:
                    raise DataFileError(
                        f"{path} is not a valid zip ({err}): download it again", path
                    ) from err
        find_layout(tmp)  # raises if the result is not a usable root
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except (DataFileError, FileNotFoundError, ValueError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _say("error", err)
        return 1
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    console.print(f"wrote {out} (flat layout) - {summary}")
    return 0


# --------------------------------------------------------------------------- check
def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def check(root: Path, num_classes: int = NUM_LIP_CLASSES, max_list: int = 20) -> int:
    """Validate every sample of ``root``; print counts and problems; 0 when no errors."""
    try:
        layout = find_layout(root)
    except (FileNotFoundError, ValueError) as err:
        _say("error", err)
        return 2
    errors: dict[str, list[str]] = defaultdict(list)
    warnings: dict[str, list[str]] = defaultdict(list)
    table = Table(title=f"LIP root {root}")
    for col in ("split", "ids", "images", "labels", "image folder", "label folder"):
        table.add_column(col)
    allowed = set(range(num_classes)) | {IGNORE_INDEX}
    for split, files in layout.items():
        n_images = n_labels = 0
        for sample_id in track(files.ids, description=f"checking {split}", console=console):
            image_path = files.image_path(sample_id)
            size = None
            if not image_path.is_file():
                errors["missing image"].append(
                    f"{image_path} (id {sample_id!r} listed for {split})"
                )
            else:
                try:
                    with Image.open(image_path) as img:
                        size, mode = img.size, img.mode
                    n_images += 1
                    if mode != "RGB":
                        warnings["non-RGB image (converted on load)"].append(
                            f"{image_path} (mode {mode})"
                        )
                except Exception as err:
                    errors["unreadable image"].append(f"{image_path}: {err}")
            if not files.labelled:
                continue
            label_path = files.label_path(sample_id)
            if not label_path.is_file():
                errors["missing label"].append(f"{label_path} (for {image_path})")
                continue
            try:
                label = decode_label(label_path).numpy()
            except DataFileError as err:
                errors["unreadable label"].append(str(err))
                continue
            n_labels += 1
            bad = sorted(set(np.unique(label).tolist()) - allowed)
            if bad:
                errors["label values outside classes"].append(
                    f"{label_path}: values {bad} (allowed 0..{num_classes - 1} and {IGNORE_INDEX})"
                )
            if size is not None and (label.shape[1], label.shape[0]) != size:
                errors["size mismatch"].append(
                    f"image {image_path} is {size[0]}x{size[1]} (WxH) but label {label_path} is "
                    f"{label.shape[1]}x{label.shape[0]}"
                )
        table.add_row(
            split,
            str(len(files.ids)),
            str(n_images),
            str(n_labels) if files.labelled else "-",
            _rel(files.image_dir, root),
            _rel(files.label_dir, root) if files.label_dir else "-",
        )
    console.print(table)
    for title, found, colour in (("ERROR", errors, "red"), ("WARNING", warnings, "yellow")):
        for kind, items in found.items():
            console.print(Text.assemble((title, colour), f" {kind}: {len(items)}"))
            for item in items[:max_list]:
                console.print(f"  {item}", markup=False, soft_wrap=True)
            if len(items) > max_list:
                console.print(f"  ... and {len(items) - max_list} more")
    n_err, n_warn = sum(map(len, errors.values())), sum(map(len, warnings.values()))
    if n_err:
        console.print(f"[red]FAILED[/]: {n_err} error(s), {n_warn} warning(s)")
        return 1
    console.print(f"[green]OK[/]: no errors, {n_warn} warning(s)")
    return 0


# --------------------------------------------------------------------------- bench
def _set_one_thread(_worker_id: int) -> None:
    import torch

    torch.set_num_threads(1)


def bench(
    root: Path,
    workers: int = 0,
    crop: int = 473,
    samples: int = 200,
    runs: int = 5,
    batch_size: int = 8,
) -> float:
    """Median train-pipeline throughput per worker (decode + augmentation + normalisation)."""
    import torch
    from torch.utils.data import DataLoader

    from lipnet_pl.data.classes import LIP
    from lipnet_pl.data.dataset import LIPDataset
    from lipnet_pl.data.transforms import TrainTransform

    if workers < 0 or samples < 1 or runs < 1:
        raise ValueError(
            f"need --workers >= 0, --samples >= 1, --runs >= 1; got {workers}, {samples}, {runs}"
        )
    files = find_layout(root)
    if "train" not in files:
        raise FileNotFoundError(f"{root} has no train split to benchmark")
    dataset = LIPDataset(files["train"], TrainTransform((crop, crop), LIP.flip_permutation))
    torch.manual_seed(0)
    rates: list[float] = []
    cpu_rates: list[float] = []  # per CPU-second of this process: unaffected by other load
    if workers == 0:
        torch.set_num_threads(1)
        n = len(dataset)
        dataset[0]  # warm-up
        for r in range(runs):
            start, cpu_start = time.perf_counter(), time.process_time()
            for i in range(samples):
                dataset[(r * samples + i) % n]
            rates.append(samples / (time.perf_counter() - start))
            cpu_rates.append(samples / max(time.process_time() - cpu_start, 1e-9))
    else:
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            num_workers=workers,
            worker_init_fn=_set_one_thread,
            persistent_workers=True,
            drop_last=True,
        )
        batches = max(1, samples // batch_size)
        it = iter(loader)

        def next_batch():
            nonlocal it
            try:
                return next(it)
            except StopIteration:
                it = iter(loader)
                return next(it)

        for _ in range(workers * 2):
            next_batch()  # warm-up: workers started and queues full
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(batches):
                next_batch()
            rates.append(batches * batch_size / (time.perf_counter() - start) / workers)
    rate = statistics.median(rates)
    print(f"train pipeline: {rate:.1f} img/s per worker")
    if cpu_rates:
        print(
            f"  (by process CPU time: {statistics.median(cpu_rates):.1f} img/s; wall clock above)"
        )
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lipnet_pl.data", description="LIP data tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="official LIP zips -> flat layout")
    p.add_argument("zip_dir", type=Path, help="folder holding TrainVal_images.zip etc.")
    p.add_argument("out", type=Path, help="output root (flat layout)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    c = sub.add_parser("check", help="validate a LIP root and print a summary")
    c.add_argument("root", type=Path)
    c.add_argument("--num-classes", type=int, default=NUM_LIP_CLASSES)
    c.add_argument("--max-list", type=int, default=20, help="problems listed per kind")
    b = sub.add_parser("bench", help="train pipeline speed (img/s per worker)")
    b.add_argument("root", type=Path)
    b.add_argument("--workers", type=int, default=0)
    b.add_argument("--crop", type=int, default=473)
    b.add_argument("--samples", type=int, default=200, help="images per timed run")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.zip_dir, args.out, force=args.force)
    if args.command == "check":
        return check(args.root, num_classes=args.num_classes, max_list=args.max_list)
    try:
        bench(args.root, args.workers, args.crop, args.samples, args.runs, args.batch_size)
    except (FileNotFoundError, ValueError) as err:
        _say("error", err)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
