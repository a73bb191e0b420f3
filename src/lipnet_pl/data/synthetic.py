"""Synthetic LIP-format data: a learnable stand-in for LIP (which cannot be downloaded automatically).

Two styles (``style=``, ``--style``):

* ``simple`` (the default of ``generate()``): one roughly centred person facing the camera, drawn
  from simple shapes on a muted background. The person's LEFT arm/leg/shoe lies on the IMAGE's
  right side, exactly as in LIP, and left and right parts look the same: only their position
  tells them apart, so a model learns left vs right only if the flip augmentation swaps the
  labels. Every class is told apart within a few pixels.
* ``context`` (``conf/data/synthetic.yaml``; drawn by ``synthetic_people.render_person``): half the
  persons face away, so their left limbs are on the image's LEFT; limbs look identical on both
  sides and only the head (face or hair) tells the facing, so left/right needs context from far
  away. Posed persons of several scales, occluders (labelled background) and cluttered
  backgrounds in the persons' own colours.

Every class has its own colour and stripe texture (plus lighting jitter and noise) so a small
CNN trained for minutes on CPU separates them. Output is byte-identical for a given seed.
``<root>/synthetic.json`` records the settings (to detect stale sets) and, per split, one record
per image: ``id``, ``facing``, ``scale`` (person box height / image height), ``box``, ...

CLI: ``python -m lipnet_pl.data.synthetic --out DIR --train N --val M --test K --seed S
[--style simple|context] [--layout official|nested|flat] [--no-id-files]
[--min-size 80 --max-size 400]``
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from lipnet_pl.config import config_dir
from lipnet_pl.data import synthetic_draw as draw
from lipnet_pl.data import synthetic_people
from lipnet_pl.data.layout import ID_FILES, IMAGE_DIR, LABEL_DIR, SPLITS, layout_paths
from lipnet_pl.data.synthetic_draw import uniform as _u

LAYOUTS: dict[str, dict[str, str]] = {
    style: layout_paths(style) for style in ("flat", "official", "nested")
}

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when the drawing changes: datamodules regenerate stale sets
MARKER = "synthetic.json"
SAMPLES_KEY = "samples"  # per-image records in MARKER, next to the settings (not compared)
STYLES = ("simple", "context")


def draw_label(width: int, height: int, rng: np.random.Generator, index: int) -> np.ndarray:
    """Class-id map of one person facing the camera (uint8 [H,W]).

    ``index`` cycles the outfit (shirt+pants, coat+skirt, dress, jumpsuit) and forces one
    accessory in every five images so that any 5 consecutive images use all 20 classes.
    Drawn back to front (legs, arms, lower body, torso, head); the random draws happen in that
    order too, which the byte-identical output of a seed depends on.
    """
    img = Image.new("L", (width, height), 0)
    ph = height * _u(rng, 0.82, 0.95)
    pw = min(width * 0.95, ph * _u(rng, 0.42, 0.56))
    left = (width - pw) / 2 + _u(rng, -0.04, 0.04) * width
    top = (height - ph) / 2 + _u(rng, -0.02, 0.02) * height
    c = draw.Canvas(img, left, top, pw, ph)  # body units: 0..1 across the person box
    outfit = draw.OUTFITS[index % 4]
    has = {a: bool(rng.random() < 0.4) or index % 5 == k for k, a in enumerate(draw.ACCESSORIES)}
    legs = _draw_legs(c, rng, has["socks"])
    arms = _draw_arms(c, rng, has["gloves"])
    _draw_lower_body(c, rng, outfit, legs)
    _draw_torso(c, rng, outfit, arms)
    _draw_head(c, rng, has)
    return np.asarray(img, dtype=np.uint8)


_Leg = tuple[float, float, float]  # (x0, x1) across the top of the leg, dx: sideways shift at 0.92


def _draw_legs(c: draw.Canvas, rng: np.random.Generator, socks: bool) -> dict[int, _Leg]:
    """Legs, socks, shoes. Image-left is the person's RIGHT leg (17), image-right the LEFT (16)."""
    spread = _u(rng, 0.0, 0.08)
    legs = {17: (0.35, 0.49, -spread), 16: (0.51, 0.65, spread)}
    for cls, (x0, x1, dx) in legs.items():
        c.poly([(x0, 0.54), (x1, 0.54), (x1 + dx, 0.92), (x0 + dx, 0.92)], cls)
    if socks:
        for x0, x1, dx in legs.values():
            a, b = 0.84, 0.91
            c.poly([(x0 + dx * 0.79, a), (x1 + dx * 0.79, a), (x1 + dx * 0.97, b),
                    (x0 + dx * 0.97, b)], 8)  # fmt: skip
    for cls, (x0, x1, dx) in ((19, legs[17]), (18, legs[16])):
        x = (x0 + x1) / 2 + dx + (-0.03 if cls == 19 else 0.03)
        c.ellipse(x, 0.94, 0.1, 0.04, cls)
    return legs


_Arm = tuple[float, float, float]  # shoulder x, hand x, hand y


def _draw_arms(c: draw.Canvas, rng: np.random.Generator, gloves: bool) -> dict[int, _Arm]:
    """Arms and gloves. Image-left is the person's RIGHT arm (15), image-right the LEFT arm (14)."""
    arms = {}
    for cls, sign in ((15, -1), (14, 1)):
        sx = 0.5 + sign * 0.23
        hx = 0.5 + sign * (0.3 + _u(rng, 0.0, 0.16))
        hy = _u(rng, 0.5, 0.6)
        c.poly([(sx - 0.065, 0.21), (sx + 0.065, 0.21), (hx + 0.055, hy), (hx - 0.055, hy)], cls)
        arms[cls] = (sx, hx, hy)
    if gloves:
        for _sx, hx, hy in arms.values():
            c.ellipse(hx, hy + 0.01, 0.06, 0.035, 3)
    return arms


def _draw_lower_body(
    c: draw.Canvas, rng: np.random.Generator, outfit: str, legs: dict[int, _Leg]
) -> None:
    """Pants (sometimes shorts) with a waist band, a skirt or jumpsuit legs; a dress has none."""
    if outfit == "shirt_pants":
        hem = 0.86 if rng.random() < 0.7 else 0.72
        _draw_trouser_legs(c, legs, hem, (hem - 0.54) / 0.38, 9)
        c.rect(0.34, 0.52, 0.66, 0.6, 9)
    elif outfit == "coat_skirt":
        c.poly([(0.33, 0.54), (0.67, 0.54), (0.74, 0.72), (0.26, 0.72)], 12)
    elif outfit == "jumpsuit":
        _draw_trouser_legs(c, legs, 0.84, 0.8, 10)


def _draw_trouser_legs(
    c: draw.Canvas, legs: dict[int, _Leg], hem: float, f: float, cls: int
) -> None:
    """A tube a little wider than each leg, from the hips down to ``hem`` (``f``: hem's share of
    the leg's sideways shift)."""
    for x0, x1, dx in legs.values():
        c.poly([(x0 - 0.01, 0.54), (x1 + 0.01, 0.54), (x1 + dx * f + 0.01, hem),
                (x0 + dx * f - 0.01, hem)], cls)  # fmt: skip


def _draw_torso(
    c: draw.Canvas, rng: np.random.Generator, outfit: str, arms: dict[int, _Arm]
) -> None:
    """The dress or upper garment over the lower body, and sometimes sleeves over the upper arms."""
    torso_cls = draw.TORSO_CLASS[outfit]
    if outfit == "dress":
        c.poly([(0.29, 0.2), (0.71, 0.2), (0.69, 0.45), (0.8, 0.76), (0.2, 0.76), (0.31, 0.45)], 6)
    else:
        hem = 0.64 if outfit == "coat_skirt" else 0.58
        c.poly([(0.28, 0.2), (0.72, 0.2), (0.69, hem), (0.31, hem)], torso_cls)
    if rng.random() < 0.5:  # sleeves cover the upper arms
        for sx, hx, hy in arms.values():
            mx, my = sx + (hx - sx) * 0.4, 0.21 + (hy - 0.21) * 0.4
            c.poly([(sx - 0.075, 0.2), (sx + 0.075, 0.2), (mx + 0.07, my), (mx - 0.07, my)],
                   torso_cls)  # fmt: skip


def _draw_head(c: draw.Canvas, rng: np.random.Generator, has: dict[str, bool]) -> None:
    """Hair (sometimes long, behind the shoulders), face, then scarf, hat and sunglasses."""
    c.ellipse(0.5, 0.085, 0.15, 0.08, 2)  # hair
    if rng.random() < 0.4:  # long hair behind the shoulders
        c.rect(0.36, 0.1, 0.64, 0.27, 2)
    c.ellipse(0.5, 0.12, 0.11, 0.085, 13)  # face
    if has["scarf"]:
        c.rect(0.37, 0.18, 0.63, 0.235, 11)
        c.rect(0.54, 0.2, 0.6, 0.36, 11)
    if has["hat"]:
        c.ellipse(0.5, 0.035, 0.16, 0.04, 1)
    if has["sunglasses"]:
        c.rect(0.41, 0.1, 0.59, 0.125, 4)


def render_image(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image for a label: class colour + stripe texture, muted background, noise."""
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    jitter = rng.uniform(-12, 12, size=draw.CLASS_COLOURS.shape).astype(np.float32)
    colours = draw.CLASS_COLOURS + jitter
    colours[[15, 17, 19]] = colours[[14, 16, 18]]  # left and right look the same
    base = colours[label]
    freq = draw.CLASS_TEXTURE[label, 0] * (2 * np.pi / 100)
    theta = np.deg2rad(draw.CLASS_TEXTURE[label, 1])
    stripes = np.sin(freq * (xx * np.cos(theta) + yy * np.sin(theta)))
    image = base + (9.0 * stripes)[..., None]
    # Muted background: grey with a tint and a linear gradient.
    grey = _u(rng, 95, 190)
    tint = rng.uniform(-18, 18, size=3).astype(np.float32)
    gx, gy = rng.uniform(-40, 40, size=2)
    bg = grey + tint + (gx * (xx / max(w, 1) - 0.5) + gy * (yy / max(h, 1) - 0.5))[..., None]
    image = np.where((label == 0)[..., None], bg, image)
    image *= _u(rng, 0.85, 1.15)
    image += rng.normal(0, 6, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def make_sample(
    seed: int, split: str, index: int, *args, **kwargs
) -> tuple[str, np.ndarray, np.ndarray]:
    """(id, image HxWx3 uint8, label HxW uint8) for sample ``index`` of ``split``; pure in its args.

    ``make_record`` without the metadata; takes its arguments (min_size, max_size, style).
    """
    sample_id, image, label, _meta = make_record(seed, split, index, *args, **kwargs)
    return sample_id, image, label


def facing_of(seed: int, split: str, index: int) -> str:
    """Facing of context-style sample ``index``: one of each consecutive pair (0,1), (2,3), ...
    faces away, so every split of >= 2 images has >= 1/3 back views (exactly half when even)."""
    first_is_back = np.random.default_rng([seed, SPLIT_CODES[split], index // 2, 11]).random() < 0.5
    return "back" if first_is_back == (index % 2 == 0) else "front"


def make_record(
    seed: int,
    split: str,
    index: int,
    min_size: int,
    max_size: int,
    style: str,
) -> tuple[str, np.ndarray, np.ndarray, dict]:
    """``make_sample`` plus the metadata recorded in synthetic.json (facing, scale, box, ...)."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    rng = np.random.default_rng([seed, SPLIT_CODES[split], index])
    height = int(rng.integers(min_size, max_size + 1))
    if style == "simple":
        width = int(np.clip(round(height * _u(rng, 0.45, 1.1)), min_size, max_size))
        sample_id = f"{1000 + index}_{int(rng.integers(1_000_000, 10_000_000))}"
        label = draw_label(width, height, rng, index)
        image = render_image(label, rng)
        rows, cols = np.nonzero(label)
        box = [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1]
        meta = {
            "facing": "front",
            "scale": round((box[3] - box[1]) / height, 4),
            "box": box,
            "outfit": draw.OUTFITS[index % 4],
            "occluded": 0.0,
        }
    else:
        width = int(np.clip(round(height * _u(rng, 0.6, 1.0)), min_size, max_size))
        sample_id = f"{1000 + index}_{int(rng.integers(1_000_000, 10_000_000))}"
        image, label, meta = synthetic_people.render_person(
            [seed, SPLIT_CODES[split], index, 1],
            facing_of(seed, split, index),
            height,
            width,
            index=index,
        )
    meta = {"id": sample_id, "size": [height, width], **meta}
    return sample_id, image, label, meta


def _encode_jpeg(image: np.ndarray, grey: bool) -> bytes:
    buf = io.BytesIO()
    pil = Image.fromarray(image, "RGB")
    if grey:
        pil = pil.convert("L")
    pil.save(buf, format="JPEG", quality=92)
    return buf.getvalue()


def _encode_png(label: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(label, "L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def generate(
    out: str | Path, *, overwrite: bool = False, progress: bool = False, **settings: Any
) -> Path:
    """Write a synthetic LIP-format dataset to ``out`` in ``layout``; returns ``out``.

    ``style``: ``"simple"`` (persons facing the camera) or ``"context"`` (front and back views,
    left/right decided by the head only); see the module docstring.

    Written into a temporary sibling folder and renamed, so ``out`` is never left half-written.
    An existing non-empty ``out`` raises FileExistsError unless ``overwrite=True``.
    """
    settings = synthetic_settings(**settings)
    layout, style, seed = settings["layout"], settings["style"], int(settings["seed"])
    min_size, max_size = int(settings["min_size"]), int(settings["max_size"])
    counts = _checked_counts(layout, style, *(settings[s] for s in SPLITS), min_size, max_size)
    settings.update(counts, seed=seed, min_size=min_size, max_size=max_size)
    settings["grey_fraction"] = grey_fraction = float(settings["grey_fraction"])
    settings["id_files"] = id_files = bool(settings["id_files"])
    out = _output_root(out, overwrite)
    paths = LAYOUTS[layout]
    tmp = make_staging_dir(out)
    writer = _SampleWriter(tmp, paths, seed, min_size, max_size, style, grey_fraction)
    try:
        records = writer.write_splits(counts, progress, f"synthetic LIP -> {out}")
        if id_files:
            writer.write_id_files(records)
        (tmp / MARKER).write_text(
            json.dumps({**settings, SAMPLES_KEY: records}, sort_keys=True) + "\n"
        )
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _checked_counts(
    layout: str, style: str, train: int, val: int, test: int, min_size: int, max_size: int
) -> dict[str, int]:
    """Per-split sample counts, after rejecting bad arguments before anything is written."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    counts = {"train": int(train), "val": int(val), "test": int(test)}
    if min(counts.values()) < 0:
        raise ValueError(f"sample counts must be >= 0, got {counts}")
    if not 16 <= int(min_size) <= int(max_size):
        raise ValueError(
            f"need 16 <= min_size <= max_size, got min_size={min_size} max_size={max_size}"
        )
    return counts


def _output_root(out: str | Path, overwrite: bool) -> Path:
    """``out`` as a Path whose parent exists; refuses to replace a non-empty one unless asked."""
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty: choose another --out or pass overwrite"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _images_key(split: str) -> str:
    """LAYOUTS key of a split's image folder (LIP calls the test one ``testing_images``)."""
    return IMAGE_DIR[split]


@dataclass(frozen=True)
class _SampleWriter:
    """Writes the samples of one generator setting into the staging folder ``tmp``, laid out as
    ``paths`` (one of LAYOUTS). ``seed`` is passed on as given: it seeds every sample's RNG."""

    tmp: Path
    paths: dict[str, str]
    seed: int
    min_size: int
    max_size: int
    style: str
    grey_fraction: float

    def write_splits(self, counts: dict[str, int], progress: bool, description: str) -> dict:
        """Folders of the non-empty splits, then every sample; returns the records per split."""
        for split in counts:
            if counts[split]:
                (self.tmp / self.paths[_images_key(split)]).mkdir(parents=True)
                if split != "test":
                    (self.tmp / self.paths[LABEL_DIR[split]]).mkdir(parents=True)
        records: dict[str, list[dict]] = {s: [] for s in counts}
        tasks = [(split, i) for split, n in counts.items() for i in range(n)]
        for split, i in _progress(tasks, progress, description):
            records[split].append(self.write_sample(split, i))
        return records

    def write_sample(self, split: str, i: int) -> dict:
        """The JPEG (greyscale for a seeded share), the label PNG outside test; its record."""
        sample_id, image, label, meta = make_record(
            self.seed, split, i, self.min_size, self.max_size, self.style
        )
        grey_rng = np.random.default_rng([self.seed, SPLIT_CODES[split], i, 7])
        grey = bool(grey_rng.random() < self.grey_fraction)
        jpeg = _encode_jpeg(image, grey)
        (self.tmp / self.paths[_images_key(split)] / f"{sample_id}.jpg").write_bytes(jpeg)
        if split != "test":
            png = _encode_png(label)
            (self.tmp / self.paths[LABEL_DIR[split]] / f"{sample_id}.png").write_bytes(png)
        return {**meta, "grey": grey}

    def write_id_files(self, records: dict[str, list[dict]]) -> None:
        """``<split>_id.txt`` of every non-empty split: its ids in generation order."""
        for split, split_records in records.items():
            if split_records:
                ids = [record["id"] for record in split_records]
                (self.tmp / self.paths[ID_FILES[split]]).write_text("\n".join(ids) + "\n")


@cache
def synthetic_defaults() -> dict[str, Any]:
    """The synthetic set's settings as ``conf/data/synthetic.yaml`` (``data.synthetic``) gives
    them: the one source of the defaults of :func:`generate`, its CLI and ``data=synthetic``."""
    cfg = OmegaConf.load(Path(config_dir()) / "data" / "synthetic.yaml")
    return dict(OmegaConf.to_container(cfg.synthetic, resolve=True))


def synthetic_settings(**kwargs) -> dict:
    """The generator settings recorded in ``<root>/synthetic.json`` (to detect stale sets):
    :func:`synthetic_defaults` with ``kwargs`` on top; an unknown key is a ValueError."""
    unknown = sorted(set(kwargs) - set(synthetic_defaults()))
    if unknown:
        raise ValueError(
            f"unknown synthetic setting(s) {unknown}: allowed {sorted(synthetic_defaults())}"
        )
    return {"version": GENERATOR_VERSION, **synthetic_defaults(), **kwargs}


def is_current(root: str | Path, **kwargs) -> bool | None:
    """True if ``root`` was generated with these settings, False if with others, None if unknown."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return None
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return False
    if not isinstance(recorded, dict):
        return False
    recorded.pop(SAMPLES_KEY, None)
    return recorded == json.loads(json.dumps(synthetic_settings(**kwargs)))


def read_records(root: str | Path) -> dict[str, list[dict]]:
    """Per-split image records (id, facing, scale, box, ...) from ``<root>/synthetic.json``."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        raise FileNotFoundError(f"{marker} not found: {root} was not written by this generator")
    return json.loads(marker.read_text()).get(SAMPLES_KEY, {})


def make_staging_dir(out: Path) -> Path:
    """Temporary sibling of ``out`` (renamed onto it when complete), with normal permissions."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    return tmp


def _progress(items, enabled: bool, description: str):
    if not enabled:
        yield from items
        return
    from rich.progress import track

    yield from track(items, description=description)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lipnet_pl.data.synthetic", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="output root (must not exist or be empty)")
    defaults = synthetic_defaults()
    parser.add_argument("--train", type=int, default=defaults["train"])
    parser.add_argument("--val", type=int, default=defaults["val"])
    parser.add_argument("--test", type=int, default=defaults["test"])
    parser.add_argument("--seed", type=int, default=defaults["seed"])
    parser.add_argument(
        "--style",
        choices=STYLES,
        default=defaults["style"],
        help="simple: persons face the camera; context: front and back views (module docstring)",
    )
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default=defaults["layout"])
    parser.add_argument("--no-id-files", action="store_true", help="omit train/val/test_id.txt")
    parser.add_argument(
        "--min-size", type=int, default=defaults["min_size"], help="smallest image side in pixels"
    )
    parser.add_argument(
        "--max-size", type=int, default=defaults["max_size"], help="largest image side in pixels"
    )
    parser.add_argument(
        "--grey-fraction",
        type=float,
        default=defaults["grey_fraction"],
        help="share of greyscale JPEGs",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = parser.parse_args(argv)
    out = generate(
        args.out,
        train=args.train,
        val=args.val,
        test=args.test,
        seed=args.seed,
        layout=args.layout,
        id_files=not args.no_id_files,
        min_size=args.min_size,
        max_size=args.max_size,
        grey_fraction=args.grey_fraction,
        style=args.style,
        overwrite=args.overwrite,
        progress=True,
    )
    print(
        f"wrote {args.train} train / {args.val} val / {args.test} test samples "
        f"({args.style} style, {args.layout} layout) to {out}"
    )


if __name__ == "__main__":
    main()
