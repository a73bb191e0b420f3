"""Context-style synthetic data: back views whose left/right only the head can tell."""

from __future__ import annotations

import numpy as np
import pytest

from lipnet_pl.config import compose
from lipnet_pl.data import LIPDataModule, LIPDataset, find_layout
from lipnet_pl.data.synthetic import (
    MARKER,
    facing_of,
    generate,
    is_current,
    read_records,
    synthetic_settings,
)
from lipnet_pl.data.synthetic import main as synthetic_main
from lipnet_pl.data.synthetic_people import LEFT_RIGHT_SWAP, render_person

SMALL = {"min_size": 48, "max_size": 80}
LEFT_RIGHT = {14, 15, 16, 17, 18, 19}


def _mean_col(label: np.ndarray, cls: int) -> float:
    return float(np.nonzero(label == cls)[1].mean())


@pytest.mark.parametrize("index", range(6))
def test_front_and_back_views_differ_only_in_the_head(index):
    seed = [7, index]
    front, front_label, front_meta = render_person(seed, "front", 120, 96, index=index)
    back, back_label, back_meta = render_person(seed, "back", 120, 96, index=index)
    neck = front_meta["neck_row"]
    assert neck == back_meta["neck_row"] and 0 < neck < 120
    assert {front_meta["facing"], back_meta["facing"]} == {"front", "back"}
    # below the neck: the same pixels, with person-left and person-right swapped
    assert np.array_equal(front[neck:], back[neck:])
    assert np.array_equal(back_label[neck:], LEFT_RIGHT_SWAP[front_label[neck:]])
    assert LEFT_RIGHT & set(np.unique(front_label[neck:]).tolist())
    # the head tells them apart: a face only in front, hair where the face was in the back view
    assert (front_label == 13).any() and not (back_label == 13).any()
    assert not (back_label == 4).any()  # no sunglasses on the back of a head
    assert np.array_equal(back_label[front_label == 13], np.full((front_label == 13).sum(), 2))
    differ = np.nonzero((front != back).any(-1))[0]
    assert differ.size and differ.max() < neck
    # person-centric labels: the person's right leg is on the image's left only in front views
    if {16, 17} <= set(np.unique(front_label).tolist()):
        assert _mean_col(front_label, 17) < _mean_col(front_label, 16)
        assert _mean_col(back_label, 16) < _mean_col(back_label, 17)


def test_left_and_right_limbs_look_the_same():
    image, label, _ = render_person(3, "front", 240, 192, index=0)
    for left, right in ((14, 15), (16, 17), (18, 19)):
        if (label == left).sum() > 30 and (label == right).sum() > 30:
            a, b = image[label == left].mean(0), image[label == right].mean(0)
            assert np.abs(a - b).max() < 12
    assert np.abs(image[label == 16].mean(0) - image[label == 9].mean(0)).max() > 40


def test_every_split_has_at_least_a_quarter_back_views_and_records_per_image(tmp_path):
    counts = {"train": 12, "val": 9, "test": 3}
    root = generate(tmp_path / "ctx", seed=5, style="context", **counts, **SMALL)
    records = read_records(root)
    layout = find_layout(root)
    for split, n in counts.items():
        recs = records[split]
        assert [r["id"] for r in recs] == list(layout[split].ids)
        backs = sum(r["facing"] == "back" for r in recs)
        assert len(recs) == n and backs >= 0.25 * n and backs < n
        for r in recs:
            h, w = r["size"]
            x0, y0, x1, y1 = r["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            assert r["scale"] == pytest.approx((y1 - y0) / h, abs=1e-3)
            assert 0 <= r["occluded"] < 0.6
    scales = [r["scale"] for recs in records.values() for r in recs]
    assert max(scales) > 0.6 and min(scales) < 0.6  # several person scales
    # pairs make half of any even-length split face away, for any seed
    assert sum(facing_of(s, "val", i) == "back" for s in range(5) for i in range(10)) == 25


def test_context_generation_is_deterministic(tmp_path):
    kwargs = {"train": 4, "val": 2, "test": 1, "style": "context", **SMALL}
    a = generate(tmp_path / "a", seed=1, **kwargs)
    b = generate(tmp_path / "b", seed=1, **kwargs)
    c = generate(tmp_path / "c", seed=2, **kwargs)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 4 + 2 * 2 + 1 + 3 + 1  # (jpg, png) per labelled image, ids, marker
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / MARKER).read_bytes() != (c / MARKER).read_bytes()


def test_style_change_makes_the_set_stale_and_the_datamodule_regenerates_it(tmp_path):
    settings = {"train": 2, "val": 2, "test": 0, **SMALL}
    root = generate(tmp_path / "syn", seed=0, style="simple", **settings)
    assert is_current(root, seed=0, **settings) is False  # the default style is context
    assert is_current(root, seed=0, style="simple", **settings) is True
    assert is_current(root, seed=0, style="context", **settings) is False
    dm = LIPDataModule(str(root), synthetic={"seed": 0, "style": "context", **settings})
    dm.prepare_data()
    assert is_current(root, seed=0, style="context", **settings) is True
    assert {r["facing"] for r in read_records(root)["val"]} == {"front", "back"}


@pytest.mark.parametrize("layout", ["official", "nested", "flat"])
def test_context_layouts_load_through_find_layout_and_lipdataset(tmp_path, layout):
    root = generate(tmp_path / layout, train=5, val=2, test=1, seed=3, layout=layout,
                    style="context", **SMALL)  # fmt: skip
    found = find_layout(root)
    assert {s: len(f.ids) for s, f in found.items()} == {"train": 5, "val": 2, "test": 1}
    seen: set[int] = set()
    for i in range(5):
        sample = LIPDataset(found["train"]).load(i)
        assert tuple(sample["mask"].shape) == tuple(sample["image"].shape[-2:])
        seen |= set(sample["mask"].unique().tolist())
    assert seen <= set(range(20)) and LEFT_RIGHT | {0, 2, 13} <= seen


def test_the_config_is_the_one_source_of_the_defaults_and_bad_values_are_named(tmp_path):
    configured = compose("train", ["data=synthetic"]).data.synthetic
    settings = synthetic_settings()
    assert {k: settings[k] for k in configured} == dict(configured)
    assert set(settings) == {"version", *configured}
    with pytest.raises(ValueError, match="'fancy'"):
        generate(tmp_path / "x", style="fancy")
    with pytest.raises(ValueError, match="'side'"):
        render_person(0, "side")
    with pytest.raises(ValueError, match="fancy"):
        LIPDataModule(str(tmp_path / "y"), synthetic={"fancy": 1})


def test_cli_writes_the_context_style(tmp_path, capsys):
    out = tmp_path / "cli"
    synthetic_main(["--out", str(out), "--train", "2", "--val", "2", "--test", "0",
                    "--style", "context", "--min-size", "48", "--max-size", "64"])  # fmt: skip
    assert "context style" in capsys.readouterr().out
    assert is_current(out, train=2, val=2, test=0, style="context", min_size=48, max_size=64)
