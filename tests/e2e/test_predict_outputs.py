"""Where ``python -m lipnet_pl.predict`` writes: never into what it reads (issue 28, item 6), and
on a full disk one line with every written file whole and no temporary left (item 5)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from full_disk import fill, hidden, tmpfs
from PIL import Image

pytestmark = pytest.mark.slow


def photos(folder: Path, n: int, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.jpg")
    return folder


def images_done(stdout: str) -> int:
    return int(re.search(r"done: (\d+) images", stdout).group(1))


def test_a_rerun_inside_the_photos_folder_does_not_parse_its_own_outputs(
    random_ckpt, tmp_path, cli
):
    folder = photos(tmp_path / "photos", 2)
    for _ in range(2):  # default output: outputs/predict/runs/<time>/predictions, under input=.
        done = cli("predict", [f"ckpt_path={random_ckpt}", "input=."], cwd=folder)
        assert done.returncode == 0, done.stderr[-3000:]
        assert images_done(done.stdout) == 2, done.stdout
    for _ in range(2):  # output= inside input=
        done = cli(
            "predict", [f"ckpt_path={random_ckpt}", f"input={folder}", "output=out"], cwd=folder
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert images_done(done.stdout) == 2, done.stdout
    assert not list((folder / "out").rglob("out"))  # no out/.../out nesting
    assert sorted(p.name for p in (folder / "out/labels").iterdir()) == ["p0.png", "p1.png"]


def test_a_full_disk_stops_predict_with_one_line_and_whole_files(random_ckpt, tmp_path, cli):
    folder = photos(tmp_path / "photos", 12, size=96)
    with tmpfs(tmp_path / "disk", 4 * 2**20) as disk:
        fill(disk, leave_bytes=40 * 2**10)  # room for a few images' outputs, not all 12
        out = disk / "parsed"
        done = cli("predict", [f"ckpt_path={random_ckpt}", f"input={folder}", f"output={out}"])
        err = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2, done.stderr[-3000:]
        assert len(err) == 1 and err[0].startswith("error: cannot write "), done.stderr[-3000:]
        assert "No space left on device" in err[0]
        assert hidden(out) == []  # no temporary keeps the disk full
        for png in out.rglob("*.png"):  # what was written is whole
            with Image.open(png) as image:
                image.load()


def test_eval_on_a_full_disk_is_one_line(trained_ckpt, lip_root, tmp_path, cli):
    """The validation panel and the reports of eval, written where there is no room."""
    with tmpfs(tmp_path / "disk", 2 * 2**20) as disk:
        fill(disk, leave_bytes=2 * 2**10)
        args = [
            f"ckpt_path={trained_ckpt}",
            f"data.root={lip_root}",
            "trainer=cpu",
            f"trainer.default_root_dir={disk}",  # figures/val_panel_*.png
            f"output={disk / 'out'}",
        ]
        done = cli("eval", args)
        err = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode == 2, done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        assert len(err) == 1 and "No space left on device" in err[0], done.stderr[-3000:]
        assert hidden(disk) == []
