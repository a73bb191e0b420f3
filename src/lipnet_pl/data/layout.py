"""Find the LIP folders and id lists under a root, whatever layout the user unzipped into.

Accepted (searched a few levels deep, shallowest match wins):

* official: ``TrainVal_images/{train_images,val_images,train_id.txt,val_id.txt}``,
  ``TrainVal_parsing_annotations/{train,val}_segmentations``,
  ``Testing_images/{testing_images,test_id.txt}``
* doubly nested: the same with every top folder repeated (``TrainVal_images/TrainVal_images/...``)
* flat: ``<root>/{train_images,train_segmentations,val_images,val_segmentations,testing_images,
  train_id.txt,val_id.txt,test_id.txt}``

Ids come from the id files, or from the image file names when an id file is absent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lipnet_pl.data.media import IMAGE_SUFFIXES

SPLITS = ("train", "val", "test")
# The one home of LIP's folder and file names (as the official zips unpack them).
IMAGE_DIR = {"train": "train_images", "val": "val_images", "test": "testing_images"}
LABEL_DIR = {"train": "train_segmentations", "val": "val_segmentations"}
ID_FILES = {"train": "train_id.txt", "val": "val_id.txt", "test": "test_id.txt"}
# the official zips' top folders (doubly nested copies repeat them once more)
IMAGE_PARENT = {"train": "TrainVal_images", "val": "TrainVal_images", "test": "Testing_images"}
LABEL_PARENT = "TrainVal_parsing_annotations"
# what find_layout accepts: the official names, plus ``test_images`` seen in some copies
IMAGE_DIRS = {
    "train": (IMAGE_DIR["train"],),
    "val": (IMAGE_DIR["val"],),
    "test": (IMAGE_DIR["test"], "test_images"),
}
LABEL_DIRS = {split: ((LABEL_DIR[split],) if split in LABEL_DIR else ()) for split in SPLITS}
FLAT_DIRS = (*IMAGE_DIR.values(), *LABEL_DIR.values())
LABEL_SUFFIXES = (".png",)
MAX_DEPTH = 3
README_HINT = (
    "see data/README.md for how to get LIP (no automatic download), or run `make demo` / "
    "train with `data=synthetic` to generate a small synthetic LIP-format set"
)


@dataclass(frozen=True)
class SplitFiles:
    """Where one split lives: its image folder, label folder (None for test) and ordered ids."""

    split: str
    image_dir: Path
    label_dir: Path | None
    ids: tuple[str, ...]
    image_files: dict[str, str]
    label_files: dict[str, str]

    @property
    def labelled(self) -> bool:
        return self.label_dir is not None

    def image_path(self, sample_id: str) -> Path:
        """Path of the image for ``sample_id`` (``<id>.jpg`` unless another suffix exists)."""
        return self.image_dir / self.image_files.get(sample_id, sample_id + ".jpg")

    def label_path(self, sample_id: str) -> Path:
        if self.label_dir is None:
            raise ValueError(f"split {self.split!r} has no labels (image folder {self.image_dir})")
        return self.label_dir / self.label_files.get(sample_id, sample_id + ".png")


def _index(root: Path, max_depth: int = MAX_DEPTH) -> tuple[dict[str, Path], dict[str, Path]]:
    """Shallowest directory and file of each wanted name under root (breadth-first, depth-limited).

    Image/label folders are not descended into (they hold tens of thousands of files).
    """
    wanted_dirs = {n for names in (*IMAGE_DIRS.values(), *LABEL_DIRS.values()) for n in names}
    wanted_files = set(ID_FILES.values())
    dirs: dict[str, Path] = {}
    files: dict[str, Path] = {}
    frontier = [root]
    for _ in range(max_depth + 1):
        nxt = []
        for d in frontier:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if e.name.startswith((".", "__")):
                    continue
                if e.is_dir():
                    if e.name in wanted_dirs:
                        dirs.setdefault(e.name, d / e.name)
                    else:
                        nxt.append(d / e.name)
                elif e.name in wanted_files:
                    files.setdefault(e.name, d / e.name)
        frontier = nxt
    return dirs, files


def _stem_map(folder: Path, suffixes: tuple[str, ...]) -> dict[str, str]:
    """``{stem: file name}`` of files with one of ``suffixes`` (one scandir, cheap for 30k files)."""
    out: dict[str, str] = {}
    with os.scandir(folder) as it:
        for e in it:
            stem, suffix = os.path.splitext(e.name)
            if suffix.lower() in suffixes and not e.name.startswith(".") and stem not in out:
                out[stem] = e.name
    return out


def read_id_file(path: Path) -> list[str]:
    """Ids, one per line; blank lines skipped, a trailing image suffix or folder prefix removed."""
    ids = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        token = line.split()[0]
        stem, suffix = os.path.splitext(os.path.basename(token))
        ids.append(
            stem if suffix.lower() in IMAGE_SUFFIXES + LABEL_SUFFIXES else os.path.basename(token)
        )
    return ids


def find_split(root: str | Path, split: str) -> SplitFiles | None:
    """The files of ``split`` under ``root`` or None when its image folder is absent."""
    return find_layout(root).get(split)


def find_layout(
    root: str | Path, use_id_files: bool = True, key: str = "data.root"
) -> dict[str, SplitFiles]:
    """Locate every split present under ``root``.

    Raises FileNotFoundError (naming the config ``key`` that gave root, and the README) when
    root is missing or holds no LIP image folder, and ValueError when a labelled split has
    images but no label folder.
    """
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():  # FileNotFoundError: every caller maps that one
        raise FileNotFoundError(
            f"LIP root {root} (config key {key}) is a file, not a folder: point {key} at the "
            f"folder that holds your LIP copy; {README_HINT}"
        )
    if not root.is_dir():
        raise FileNotFoundError(
            f"LIP root {root} (config key {key}) does not exist: point {key} at your LIP "
            f"copy; {README_HINT}"
        )
    dirs, files = _index(root)
    out: dict[str, SplitFiles] = {}
    for split in SPLITS:
        image_dir = next((dirs[n] for n in IMAGE_DIRS[split] if n in dirs), None)
        if image_dir is None:
            continue
        label_dir = next((dirs[n] for n in LABEL_DIRS[split] if n in dirs), None)
        if LABEL_DIRS[split] and label_dir is None:
            raise ValueError(
                f"LIP root {root}: found {image_dir} but no {LABEL_DIRS[split][0]}/ folder for the "
                f"{split} labels (unzip TrainVal_parsing_annotations.zip and the zip nested inside "
                "it, or run `python -m lipnet_pl.data prepare ZIP_DIR OUT`)"
            )
        image_files = _stem_map(image_dir, IMAGE_SUFFIXES)
        label_files = _stem_map(label_dir, LABEL_SUFFIXES) if label_dir else {}
        id_file = files.get(ID_FILES[split]) if use_id_files else None
        ids = read_id_file(id_file) if id_file else sorted(image_files)
        out[split] = SplitFiles(split, image_dir, label_dir, tuple(ids), image_files, label_files)
    if not out or not any(out[s].ids for s in out):
        raise FileNotFoundError(
            f"LIP root {root} (config key {key}) holds no LIP images (looked {MAX_DEPTH} levels "
            f"deep for {', '.join(d + '/' for d in IMAGE_DIR.values())}); {README_HINT}"
        )
    return out


def layout_paths(style: str) -> dict[str, str]:
    """Relative path of every LIP folder and id file (keyed by its name) in one of the layouts
    above: ``flat``, ``official`` (as the zips unpack) or ``nested`` (top folders doubled)."""
    if style not in ("flat", "official", "nested"):
        raise ValueError(f"unknown LIP layout {style!r}: use flat, official or nested")
    paths = {}
    for split in SPLITS:
        for name in (IMAGE_DIR[split], ID_FILES[split]):
            paths[name] = f"{IMAGE_PARENT[split]}/{name}"
        if split in LABEL_DIR:
            paths[LABEL_DIR[split]] = f"{LABEL_PARENT}/{LABEL_DIR[split]}"
    if style == "flat":
        return {name: name for name in paths}
    if style == "nested":
        return {name: f"{path.split('/')[0]}/{path}" for name, path in paths.items()}
    return paths


def missing_split_message(root: str | Path, key: str, split: str) -> str:
    """The one text for "this root has no <split> split" (training, evaluation, the datamodule)."""
    return (
        f"{key}={root} has no {split} split (no {IMAGE_DIR[split]}/ folder with images): point "
        f"{key} at a LIP folder that has it; {README_HINT}"
    )
