"""``python -m lipnet_pl.data prepare ZIP_DIR OUT``: the official LIP zips -> the flat layout.

TrainVal_images.zip, TrainVal_parsing_annotations.zip (with its nested zip of the same name) and
Testing_images.zip are extracted into a staging folder beside OUT, checked, then renamed to OUT:
an interrupted run never leaves a half-written root. A non-empty OUT is refused unless --force.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.text import Text

from lipnet_pl.data.dataset import DataFileError
from lipnet_pl.data.layout import FLAT_DIRS, ID_FILES, IMAGE_PARENT, LABEL_PARENT, find_layout
from lipnet_pl.data.synthetic import make_staging_dir
from lipnet_pl.errors import UserError

console = Console(highlight=False)
ZIP_NAMES = tuple(
    f"{top}.zip" for top in (IMAGE_PARENT["train"], LABEL_PARENT, IMAGE_PARENT["test"])
)


def _say(level: str, message: str) -> None:
    """Print ``level: message`` without interpreting brackets in paths/values as rich markup."""
    colour = {"error": "red", "warning": "yellow"}.get(level, "")
    console.print(Text.assemble((f"{level}: ", colour), str(message)), soft_wrap=True)


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
    """The official LIP zips in ``zip_dir`` -> the flat layout in ``out`` (staged, then renamed)."""
    zip_dir, out = Path(zip_dir), Path(out)
    zips = {name: zip_dir / name for name in ZIP_NAMES}
    missing = [n for n in ZIP_NAMES[:2] if not zips[n].is_file()]
    if missing:
        raise UserError(
            f"{zip_dir} lacks {', '.join(missing)}: download the LIP zips from the official site "
            "(see data/README.md) into one folder"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out} exists and is not empty: choose another OUT or pass --force")
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
    except (FileNotFoundError, ValueError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(str(err)) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
    console.print(f"wrote {out} (flat layout) - {summary}")
    return 0
