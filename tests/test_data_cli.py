"""python -m lipnet_pl.data prepare / check / bench, and the synthetic CLI."""

from __future__ import annotations

import io
import re
import shutil
import zipfile

import numpy as np
import torch
from PIL import Image

from lipnet_pl.data import LIPDataModule, LIPDataset, find_layout
from lipnet_pl.data.__main__ import main
from lipnet_pl.data.synthetic import generate
from lipnet_pl.data.synthetic import main as synthetic_main


def exit_status(argv: list[str]) -> int:
    """What the shell sees: the return value, or the status of a one-line error exit."""
    try:
        return main(argv)
    except SystemExit as err:
        return err.code


def test_check_healthy_root_exits_0_and_prints_counts(synthetic_lip_root, capsys):
    assert exit_status(["check", str(synthetic_lip_root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"train\s*│\s*8\s*│\s*8\s*│\s*8", out)
    assert re.search(r"val\s*│\s*4\s*│\s*4\s*│\s*4", out)
    assert re.search(r"test\s*│\s*2\s*│\s*2\s*│\s*-", out)
    assert "OK" in out


def test_check_broken_root_exits_1_and_lists_every_problem(synthetic_lip_root, tmp_path, capsys):
    root = tmp_path / "broken"
    shutil.copytree(synthetic_lip_root, root)
    train = find_layout(root)["train"]
    ids = train.ids
    missing_image = train.image_path(ids[0])
    missing_image.unlink()
    missing_label = train.label_path(ids[1])
    missing_label.unlink()
    bad_values = train.label_path(ids[2])
    label = np.array(Image.open(bad_values))
    label[0, 0], label[0, 1] = 21, 77
    Image.fromarray(label).save(bad_values)
    mismatch = train.label_path(ids[3])
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(mismatch)
    unreadable = train.label_path(ids[4])
    unreadable.write_bytes(b"junk")
    grey = train.image_path(ids[5])
    Image.open(grey).convert("L").save(grey, format="JPEG")

    assert exit_status(["check", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"missing image: 1\n  {missing_image}" in out
    assert str(missing_label) in out and "missing label: 1" in out
    assert f"{bad_values}: values [21, 77]" in out
    assert "size mismatch: 1" in out and str(mismatch) in out
    assert "unreadable label: 1" in out and str(unreadable) in out
    assert "non-RGB image" in out and f"{grey} (mode L)" in out
    assert "FAILED: 5 error(s)" in out


def test_check_warns_but_passes_on_non_rgb_only(synthetic_lip_root, tmp_path, capsys):
    root = tmp_path / "grey"
    shutil.copytree(synthetic_lip_root, root)
    val = find_layout(root)["val"]
    path = val.image_path(val.ids[0])
    Image.open(path).convert("L").save(path, format="JPEG")
    assert exit_status(["check", str(root)]) == 0
    assert f"{path} (mode L)" in capsys.readouterr().out


def _zip_tree(zf: zipfile.ZipFile, src, arc_prefix):
    for path in sorted(src.rglob("*")):
        if path.is_file():
            zf.write(path, f"{arc_prefix}/{path.relative_to(src).as_posix()}")


def test_prepare_official_zips_with_nested_annotation_zip(tmp_path, capsys):
    flat = generate(
        tmp_path / "src",
        train=3,
        val=2,
        test=1,
        seed=2,
        layout="flat",
        style="simple",
        min_size=40,
        max_size=64,
    )
    zips = tmp_path / "zips"
    zips.mkdir()
    with zipfile.ZipFile(zips / "TrainVal_images.zip", "w") as zf:
        for name in ("train_images", "val_images"):
            _zip_tree(zf, flat / name, f"TrainVal_images/{name}")
        for name in ("train_id.txt", "val_id.txt"):
            zf.write(flat / name, f"TrainVal_images/{name}")
        zf.writestr("TrainVal_images/__MACOSX/._junk", b"x")
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("train_segmentations", "val_segmentations"):
            _zip_tree(zf, flat / name, f"TrainVal_parsing_annotations/{name}")
    with zipfile.ZipFile(zips / "TrainVal_parsing_annotations.zip", "w") as zf:
        zf.writestr(
            "TrainVal_parsing_annotations/TrainVal_parsing_annotations.zip", inner.getvalue()
        )
    with zipfile.ZipFile(zips / "Testing_images.zip", "w") as zf:
        _zip_tree(zf, flat / "testing_images", "Testing_images/testing_images")
        zf.write(flat / "test_id.txt", "Testing_images/test_id.txt")

    out = tmp_path / "LIP"
    assert exit_status(["prepare", str(zips), str(out)]) == 0
    for name in (
        "train_images",
        "val_segmentations",
        "testing_images",
        "train_id.txt",
        "test_id.txt",
    ):
        assert (out / name).exists(), name
    dm = LIPDataModule(str(out), batch_size=2, num_workers=0, crop_size=(32, 32))
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 2
    a, b = LIPDataset(find_layout(out)["val"]), LIPDataset(find_layout(flat)["val"])
    assert torch.equal(a[1]["mask"], b[1]["mask"]) and torch.equal(a[1]["image"], b[1]["image"])
    # OUT is now non-empty: refused without --force, replaced with it
    assert exit_status(["prepare", str(zips), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert exit_status(["prepare", str(zips), str(out), "--force"]) == 0
    assert not list(tmp_path.glob(".LIP.tmp-*"))


def test_prepare_without_zips_is_a_clear_error(tmp_path, capsys):
    assert exit_status(["prepare", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "TrainVal_images.zip" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_bench_prints_the_contract_line(synthetic_lip_root, capsys):
    assert (
        exit_status(
            ["bench", str(synthetic_lip_root), "--crop", "64", "--samples", "4", "--runs", "2"]
            + ["--device", "cpu"]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    rate = r"\d+\.\d img/s per worker"
    assert re.match(rf"train pipeline, augment_on=workers: {rate} \(float32 out", lines[0])
    assert re.match(rf"train pipeline, augment_on=device: {rate} \(decode \+ resize", lines[1])
    assert re.search(r"; \d+\.\d\dx workers", lines[1])
    assert re.fullmatch(
        r"device-side augmentation \(cpu, batch 8\): \d+\.\d\d ms per image \(CPU time, 1 thread\)",
        lines[2],
    )
    assert lines[3].startswith("jpeg decode (img/s per CPU-second, 1 thread): torchvision")


def test_synthetic_cli_writes_the_requested_layout(tmp_path, capsys):
    synthetic_main(
        [
            "--out",
            str(tmp_path / "s"),
            "--train",
            "2",
            "--val",
            "1",
            "--test",
            "0",
            "--layout",
            "nested",
            "--no-id-files",
            "--min-size",
            "32",
            "--max-size",
            "48",
        ]
    )
    layout = find_layout(tmp_path / "s")
    assert len(layout["train"].ids) == 2 and "test" not in layout
    assert (tmp_path / "s/TrainVal_images/TrainVal_images/train_images").is_dir()
    assert not list((tmp_path / "s").rglob("*_id.txt"))
