"""``python -m lipnet_pl.predict`` never writes two inputs to one output name: ``x.jpg`` beside
``x.png``, or two input folders with the same relative names (issue 28, item 1)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def photo(path: Path, width: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(width)
    Image.fromarray(rng.integers(0, 255, (64, width, 3), dtype=np.uint8)).save(path)
    return path


def test_colliding_names_get_distinct_outputs_and_the_summary_counts_them(
    random_ckpt, tmp_path, cli
):
    a, b = tmp_path / "A", tmp_path / "B"
    widths = {a / "x.jpg": 64, a / "x.png": 72, a / "sub/y.jpg": 80, b / "x.jpg": 88}
    for path, width in widths.items():
        photo(path, width)
    out = tmp_path / "out"
    done = cli("predict", [f"ckpt_path={random_ckpt}", f"input=[{a},{b}]", f"output={out}"])
    assert done.returncode == 0, done.stderr[-3000:]
    reported = int(re.search(r"done: (\d+) images", done.stdout).group(1))
    for kind in ("labels", "color", "overlay", "legend"):
        written = sorted(p.relative_to(out / kind) for p in (out / kind).rglob("*.png"))
        assert len(written) == reported == len(widths), (kind, written, done.stdout)
    # every input has its own label map, at its own size
    sizes = sorted(Image.open(p).size[0] for p in (out / "labels").rglob("*.png"))
    assert sizes == sorted(widths.values())
    assert (out / "labels/sub/y.png").is_file()  # names that do not collide are kept
    assert "written as x_png (another input has its name)" in done.stdout
