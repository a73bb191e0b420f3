"""``python -m lipnet_pl.data check ROOT``: validate every sample of a LIP root.

Counts per split and every problem: missing or unreadable files, label values outside
0..num_classes-1 and 255, image/label size mismatches; non-RGB images are warnings (they are
converted on load). Returns 1 when there are errors, 0 otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import track
from rich.table import Table
from rich.text import Text

from lipnet_pl.data.classes import IGNORE_INDEX, NUM_LIP_CLASSES
from lipnet_pl.data.dataset import DataFileError, decode_label
from lipnet_pl.data.layout import find_layout
from lipnet_pl.errors import UserError

console = Console(highlight=False)


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
        raise UserError(str(err)) from err
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
