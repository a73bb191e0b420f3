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
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lipnet_pl.data import synthetic_people

LAYOUTS: dict[str, dict[str, str]] = {
    "flat": {
        "train_images": "train_images",
        "val_images": "val_images",
        "train_segmentations": "train_segmentations",
        "val_segmentations": "val_segmentations",
        "testing_images": "testing_images",
        "train_id.txt": "train_id.txt",
        "val_id.txt": "val_id.txt",
        "test_id.txt": "test_id.txt",
    },
    "official": {
        "train_images": "TrainVal_images/train_images",
        "val_images": "TrainVal_images/val_images",
        "train_id.txt": "TrainVal_images/train_id.txt",
        "val_id.txt": "TrainVal_images/val_id.txt",
        "train_segmentations": "TrainVal_parsing_annotations/train_segmentations",
        "val_segmentations": "TrainVal_parsing_annotations/val_segmentations",
        "testing_images": "Testing_images/testing_images",
        "test_id.txt": "Testing_images/test_id.txt",
    },
}
LAYOUTS["nested"] = {
    key: (f"{path.split('/')[0]}/{path}" if "/" in path else path)
    for key, path in LAYOUTS["official"].items()
}

# Appearance (RGB) per class id; left/right pairs share one appearance on purpose.
CLASS_COLOURS = np.array(
    [
        (128, 128, 128),  # 0 background (replaced by a per-image muted field)
        (220, 40, 40),  # 1 hat
        (70, 40, 20),  # 2 hair
        (250, 250, 245),  # 3 glove
        (15, 15, 15),  # 4 sunglasses
        (40, 90, 220),  # 5 upper-clothes
        (210, 60, 180),  # 6 dress
        (140, 95, 40),  # 7 coat
        (240, 220, 50),  # 8 socks
        (25, 35, 95),  # 9 pants
        (40, 160, 70),  # 10 jumpsuits
        (250, 140, 30),  # 11 scarf
        (150, 50, 220),  # 12 skirt
        (245, 195, 165),  # 13 face
        (215, 150, 105),  # 14 left-arm
        (215, 150, 105),  # 15 right-arm
        (170, 110, 75),  # 16 left-leg
        (170, 110, 75),  # 17 right-leg
        (0, 165, 165),  # 18 left-shoe
        (0, 165, 165),  # 19 right-shoe
    ],
    dtype=np.float32,
)
# Stripe texture per class: (spatial frequency in cycles per 100 px, orientation in degrees).
_TEXTURE = np.array([(3 + (c * 7) % 11, (c * 37) % 180) for c in range(20)], dtype=np.float32)
_TEXTURE[[15, 17, 19]] = _TEXTURE[[14, 16, 18]]

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
GENERATOR_VERSION = 1  # bump when the drawing changes: datamodules regenerate stale sets
MARKER = "synthetic.json"
SAMPLES_KEY = "samples"  # per-image records in MARKER, next to the settings (not compared)
ACCESSORIES = ("hat", "sunglasses", "scarf", "gloves", "socks")
STYLES = ("simple", "context")


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_label(width: int, height: int, rng: np.random.Generator, index: int) -> np.ndarray:
    """Class-id map of one person facing the camera (uint8 [H,W]).

    ``index`` cycles the outfit (shirt+pants, coat+skirt, dress, jumpsuit) and forces one
    accessory in every five images so that any 5 consecutive images use all 20 classes.
    """
    img = Image.new("L", (width, height), 0)
    d = ImageDraw.Draw(img)
    ph = height * _u(rng, 0.82, 0.95)
    pw = min(width * 0.95, ph * _u(rng, 0.42, 0.56))
    left = (width - pw) / 2 + _u(rng, -0.04, 0.04) * width
    top = (height - ph) / 2 + _u(rng, -0.02, 0.02) * height

    def p(fx: float, fy: float) -> tuple[float, float]:
        return (left + fx * pw, top + fy * ph)

    def poly(points, cls):
        d.polygon([p(*q) for q in points], fill=cls)

    def ellipse(cx, cy, rx, ry, cls):
        x0, y0 = p(cx - rx, cy - ry)
        x1, y1 = p(cx + rx, cy + ry)
        d.ellipse([x0, y0, x1, y1], fill=cls)

    outfit = index % 4
    has = {a: bool(rng.random() < 0.4) or index % 5 == k for k, a in enumerate(ACCESSORIES)}

    # Legs: image-left is the person's RIGHT leg (17), image-right the LEFT leg (16).
    spread = _u(rng, 0.0, 0.08)
    legs = {17: (0.35, 0.49, -spread), 16: (0.51, 0.65, spread)}
    for cls, (x0, x1, dx) in legs.items():
        poly([(x0, 0.54), (x1, 0.54), (x1 + dx, 0.92), (x0 + dx, 0.92)], cls)
    if has["socks"]:
        for x0, x1, dx in legs.values():
            a, b = 0.84, 0.91
            poly(
                [
                    (x0 + dx * 0.79, a),
                    (x1 + dx * 0.79, a),
                    (x1 + dx * 0.97, b),
                    (x0 + dx * 0.97, b),
                ],
                8,
            )
    for cls, (x0, x1, dx) in ((19, legs[17]), (18, legs[16])):
        c = (x0 + x1) / 2 + dx + (-0.03 if cls == 19 else 0.03)
        ellipse(c, 0.94, 0.1, 0.04, cls)

    # Arms: image-left is the person's RIGHT arm (15), image-right the LEFT arm (14).
    arms = {}
    for cls, sign in ((15, -1), (14, 1)):
        sx = 0.5 + sign * 0.23
        hx = 0.5 + sign * (0.3 + _u(rng, 0.0, 0.16))
        hy = _u(rng, 0.5, 0.6)
        poly([(sx - 0.065, 0.21), (sx + 0.065, 0.21), (hx + 0.055, hy), (hx - 0.055, hy)], cls)
        arms[cls] = (sx, hx, hy)
    if has["gloves"]:
        for _sx, hx, hy in arms.values():
            ellipse(hx, hy + 0.01, 0.06, 0.035, 3)

    # Lower body, then torso over it.
    torso_cls = {0: 5, 1: 7, 2: 6, 3: 10}[outfit]
    if outfit == 0:  # pants (sometimes shorts)
        hem = 0.86 if rng.random() < 0.7 else 0.72
        for x0, x1, dx in legs.values():
            f = (hem - 0.54) / 0.38
            poly(
                [
                    (x0 - 0.01, 0.54),
                    (x1 + 0.01, 0.54),
                    (x1 + dx * f + 0.01, hem),
                    (x0 + dx * f - 0.01, hem),
                ],
                9,
            )
        poly([(0.34, 0.52), (0.66, 0.52), (0.66, 0.6), (0.34, 0.6)], 9)
    elif outfit == 1:  # skirt
        poly([(0.33, 0.54), (0.67, 0.54), (0.74, 0.72), (0.26, 0.72)], 12)
    elif outfit == 3:  # jumpsuit legs
        for x0, x1, dx in legs.values():
            poly(
                [
                    (x0 - 0.01, 0.54),
                    (x1 + 0.01, 0.54),
                    (x1 + dx * 0.8 + 0.01, 0.84),
                    (x0 + dx * 0.8 - 0.01, 0.84),
                ],
                10,
            )
    if outfit == 2:  # dress
        poly([(0.29, 0.2), (0.71, 0.2), (0.69, 0.45), (0.8, 0.76), (0.2, 0.76), (0.31, 0.45)], 6)
    else:
        hem = 0.64 if outfit == 1 else 0.58
        poly([(0.28, 0.2), (0.72, 0.2), (0.69, hem), (0.31, hem)], torso_cls)
    if rng.random() < 0.5:  # sleeves cover the upper arms
        for sx, hx, hy in arms.values():
            mx, my = sx + (hx - sx) * 0.4, 0.21 + (hy - 0.21) * 0.4
            poly(
                [(sx - 0.075, 0.2), (sx + 0.075, 0.2), (mx + 0.07, my), (mx - 0.07, my)], torso_cls
            )

    # Head.
    ellipse(0.5, 0.085, 0.15, 0.08, 2)  # hair
    if rng.random() < 0.4:  # long hair behind the shoulders
        poly([(0.36, 0.1), (0.64, 0.1), (0.64, 0.27), (0.36, 0.27)], 2)
    ellipse(0.5, 0.12, 0.11, 0.085, 13)  # face
    if has["scarf"]:
        poly([(0.37, 0.18), (0.63, 0.18), (0.63, 0.235), (0.37, 0.235)], 11)
        poly([(0.54, 0.2), (0.6, 0.2), (0.6, 0.36), (0.54, 0.36)], 11)
    if has["hat"]:
        ellipse(0.5, 0.035, 0.16, 0.04, 1)
    if has["sunglasses"]:
        poly([(0.41, 0.1), (0.59, 0.1), (0.59, 0.125), (0.41, 0.125)], 4)
    return np.asarray(img, dtype=np.uint8)


def render_image(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image for a label: class colour + stripe texture, muted background, noise."""
    h, w = label.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    colours = CLASS_COLOURS + rng.uniform(-12, 12, size=CLASS_COLOURS.shape).astype(np.float32)
    colours[[15, 17, 19]] = colours[[14, 16, 18]]  # left and right look the same
    base = colours[label]
    freq = _TEXTURE[label, 0] * (2 * np.pi / 100)
    theta = np.deg2rad(_TEXTURE[label, 1])
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
    seed: int,
    split: str,
    index: int,
    min_size: int = 80,
    max_size: int = 400,
    style: str = "simple",
) -> tuple[str, np.ndarray, np.ndarray]:
    """(id, image HxWx3 uint8, label HxW uint8) for sample ``index`` of ``split``; pure in its args."""
    sample_id, image, label, _meta = make_record(seed, split, index, min_size, max_size, style)
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
    min_size: int = 80,
    max_size: int = 400,
    style: str = "simple",
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
            "outfit": synthetic_people.OUTFITS[index % 4],
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
    out: str | Path,
    train: int = 8,
    val: int = 4,
    test: int = 2,
    seed: int = 0,
    layout: str = "official",
    id_files: bool = True,
    min_size: int = 80,
    max_size: int = 400,
    grey_fraction: float = 0.05,
    style: str = "simple",
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a synthetic LIP-format dataset to ``out`` in ``layout``; returns ``out``.

    ``style``: ``"simple"`` (persons facing the camera) or ``"context"`` (front and back views,
    left/right decided by the head only); see the module docstring.

    Written into a temporary sibling folder and renamed, so ``out`` is never left half-written.
    An existing non-empty ``out`` raises FileExistsError unless ``overwrite=True``.
    """
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
    settings = synthetic_settings(
        train=counts["train"],
        val=counts["val"],
        test=counts["test"],
        seed=int(seed),
        layout=layout,
        id_files=bool(id_files),
        min_size=int(min_size),
        max_size=int(max_size),
        grey_fraction=float(grey_fraction),
        style=style,
    )
    out = Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty: choose another --out or pass overwrite"
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = LAYOUTS[layout]
    tmp = make_staging_dir(out)
    try:
        tasks = [(split, i) for split, n in counts.items() for i in range(n)]
        ids: dict[str, list[str]] = {s: [] for s in counts}
        records: dict[str, list[dict]] = {s: [] for s in counts}
        for split in counts:
            if counts[split]:
                (tmp / paths[f"{'testing' if split == 'test' else split}_images"]).mkdir(
                    parents=True
                )
                if split != "test":
                    (tmp / paths[f"{split}_segmentations"]).mkdir(parents=True)
        for split, i in _progress(tasks, progress, f"synthetic LIP -> {out}"):
            sample_id, image, label, meta = make_record(
                seed, split, i, int(min_size), int(max_size), style
            )
            grey_rng = np.random.default_rng([seed, SPLIT_CODES[split], i, 7])
            grey = bool(grey_rng.random() < grey_fraction)
            records[split].append({**meta, "grey": grey})
            folder = "testing_images" if split == "test" else f"{split}_images"
            (tmp / paths[folder] / f"{sample_id}.jpg").write_bytes(_encode_jpeg(image, grey))
            if split != "test":
                (tmp / paths[f"{split}_segmentations"] / f"{sample_id}.png").write_bytes(
                    _encode_png(label)
                )
            ids[split].append(sample_id)
        if id_files:
            for split, split_ids in ids.items():
                if split_ids:
                    (tmp / paths[f"{split}_id.txt"]).write_text("\n".join(split_ids) + "\n")
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


def synthetic_settings(**kwargs) -> dict:
    """The generator settings recorded in ``<root>/synthetic.json`` (to detect stale sets)."""
    settings = {
        "version": GENERATOR_VERSION,
        "train": 8,
        "val": 4,
        "test": 2,
        "seed": 0,
        "layout": "official",
        "id_files": True,
        "min_size": 80,
        "max_size": 400,
        "grey_fraction": 0.05,
        "style": "simple",
    }
    settings.update(kwargs)
    return settings


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
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--style",
        choices=STYLES,
        default="simple",
        help="simple: persons face the camera; context: front and back views (module docstring)",
    )
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="official")
    parser.add_argument("--no-id-files", action="store_true", help="omit train/val/test_id.txt")
    parser.add_argument("--min-size", type=int, default=80, help="smallest image side in pixels")
    parser.add_argument("--max-size", type=int, default=400, help="largest image side in pixels")
    parser.add_argument(
        "--grey-fraction", type=float, default=0.05, help="share of greyscale JPEGs"
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
