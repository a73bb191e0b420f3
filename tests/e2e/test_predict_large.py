"""Large photos in ``python -m lipnet_pl.predict``: parsed in bounded memory, and an image over
``max_pixels`` is a named failed input while the others are written (issue 28, item 4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow


def smooth_photo(path: Path, height: int, width: int) -> Path:
    """A gradient JPEG: large in pixels, small on disk (like a photo, or a decompression bomb)."""
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    rgb = np.empty((height, width, 3), np.uint8)  # filled by broadcasting: no float copies
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = x.astype(np.uint8), y.astype(np.uint8), (x + y) / 2
    Image.fromarray(rgb).save(path, quality=85)
    return path


MEASURE_CHILD = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)
"""


def test_a_16_megapixel_photo_is_parsed_in_bounded_memory(random_ckpt, tmp_path):
    """Resizing the logits of a 4000x4000 photo to full size took 1.3 GB per float tensor (and
    a copy for the argmax, and float copies for the overlay): the process peaked above 3.5 GB.
    Strips keep it near the decoded image: the bound below is the process (~1 GB) + 1 GB."""
    photo = smooth_photo(tmp_path / "big.jpg", 4000, 4000)
    out = tmp_path / "out"
    args = [f"ckpt_path={random_ckpt}", f"input={photo}", f"output={out}", "save.color=false"]
    command = [
        sys.executable,
        "-m",
        "lipnet_pl.predict",
        *args,
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    # a fresh parent whose only child is predict: RUSAGE_CHILDREN of this test process would
    # also hold every earlier test's subprocesses (pip, DDP ranks, ...)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_CHILD, *command],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "WANDB_MODE": "offline"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peak_mib = int(done.stdout.strip().splitlines()[-1]) / 1024
    assert Image.open(out / "labels/big.png").size == (4000, 4000)
    assert peak_mib < 2048, f"predict peaked at {peak_mib:.0f} MiB for a 16 MP photo"


def test_an_image_over_max_pixels_is_a_named_failed_input(random_ckpt, tmp_path, cli):
    photos = tmp_path / "photos"
    photos.mkdir()
    smooth_photo(photos / "small.jpg", 64, 64)
    smooth_photo(photos / "huge.jpg", 128, 160)  # 20480 pixels, over the limit below
    out = tmp_path / "out"
    args = [f"ckpt_path={random_ckpt}", f"input={photos}", f"output={out}", "max_pixels=10000"]
    done = cli("predict", args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"done: 1 images, .*; 1 failed", done.stdout), done.stdout
    assert f"{photos / 'huge.jpg'}: 160x128 = 0 MP is over max_pixels=10000" in done.stdout
    assert sorted(p.name for p in (out / "labels").iterdir()) == ["small.png"]
    refused = cli("predict", [*args[:3], "max_pixels=-1"])
    assert refused.returncode == 2 and "max_pixels must be a positive" in refused.stderr
