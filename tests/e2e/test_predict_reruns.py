"""Small misreports of ``python -m lipnet_pl.predict`` (issue 28, item 10): EXIF orientation,
a rerun after Ctrl-C that skips what is done, and ``video.max_frames`` checked as a config value."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def test_phone_portraits_are_parsed_upright(random_ckpt, tmp_path, cli):
    stored = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)  # 64 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": a portrait stored sideways, as phones do
    Image.fromarray(stored).save(tmp_path / "portrait.jpg", exif=exif)
    out = tmp_path / "out"
    args = [f"ckpt_path={random_ckpt}", f"input={tmp_path / 'portrait.jpg'}", f"output={out}"]
    done = cli("predict", args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Image.open(out / "labels/portrait.png").size == (32, 64)  # upright: 32 wide, 64 high


def test_a_rerun_with_skip_existing_parses_only_what_is_missing(random_ckpt, tmp_path, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        pixels = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{i}.jpg")
    out = tmp_path / "out"
    args = [f"ckpt_path={random_ckpt}", f"input={photos}", f"output={out}"]
    assert cli("predict", args).returncode == 0
    (out / "overlay/p1.png").unlink()  # as if Ctrl-C came before its last output
    again = cli("predict", [*args, "skip_existing=true"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(r"done: 1 images \(2 skipped: outputs exist\)", again.stdout), again.stdout
    assert (out / "overlay/p1.png").is_file()
    bad = cli("predict", [*args, "video.max_frames=-3"])
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1, bad.stderr[-3000:]
    assert "video.max_frames must be >= 1" in lines[0]
