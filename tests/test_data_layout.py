"""Layouts, decoding of odd files and the errors that name them."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from lipnet_pl.data import DataFileError, LIPDataset, decode_image, decode_label, find_layout
from lipnet_pl.data.synthetic import generate

SMALL = {
    "style": "simple",
    "train": 3,
    "val": 2,
    "test": 1,
    "seed": 3,
    "min_size": 40,
    "max_size": 72,
}


def _samples(root):
    layout = find_layout(root)
    out = {}
    for split, files in layout.items():
        ds = LIPDataset(files)
        for i in range(len(ds)):
            s = ds[i]
            out[(split, s["id"])] = (s["image"].clone(), s.get("mask"), s["orig_size"])
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        img_a, mask_a, size_a = a[key]
        img_b, mask_b, size_b = b[key]
        assert torch.equal(img_a, img_b), key
        assert size_a == size_b
        assert (mask_a is None) == (mask_b is None)
        if mask_a is not None:
            assert torch.equal(mask_a, mask_b), key


def test_every_layout_with_and_without_id_files_gives_identical_samples(tmp_path):
    reference = _samples(generate(tmp_path / "flat_ids", layout="flat", **SMALL))
    assert {split for split, _ in reference} == {"train", "val", "test"}
    assert len(reference) == 6
    for layout in ("flat", "official", "nested"):
        for id_files in (True, False):
            root = generate(
                tmp_path / f"{layout}_{id_files}", layout=layout, id_files=id_files, **SMALL
            )
            _assert_same(_samples(root), reference)


def test_official_and_nested_layouts_are_found_where_lip_puts_them(tmp_path):
    official = find_layout(generate(tmp_path / "o", layout="official", **SMALL))
    assert (
        official["train"].image_dir.relative_to(tmp_path / "o").as_posix()
        == "TrainVal_images/train_images"
    )
    assert official["val"].label_dir.relative_to(tmp_path / "o").as_posix() == (
        "TrainVal_parsing_annotations/val_segmentations"
    )
    nested = find_layout(generate(tmp_path / "n", layout="nested", **SMALL))
    assert nested["test"].image_dir.relative_to(tmp_path / "n").as_posix() == (
        "Testing_images/Testing_images/testing_images"
    )
    assert nested["test"].label_dir is None


def test_id_file_order_is_kept_and_missing_id_files_fall_back_to_file_names(tmp_path):
    root = generate(tmp_path / "r", layout="flat", **SMALL)
    ids = ["1002_x", "1000_y"]
    (root / "train_id.txt").write_text("\n".join(f"{i}.jpg" for i in ids) + "\n\n")
    assert find_layout(root)["train"].ids == tuple(ids)
    (root / "train_id.txt").unlink()
    names = sorted(p.stem for p in (root / "train_images").iterdir())
    assert find_layout(root)["train"].ids == tuple(names)


def test_missing_or_empty_root_names_the_config_key_and_the_readme(tmp_path):
    for root in (tmp_path / "absent", tmp_path):
        with pytest.raises(FileNotFoundError) as err:
            find_layout(root)
        msg = str(err.value)
        assert (
            str(root) in msg
            and "data.root" in msg
            and "data/README.md" in msg
            and "synthetic" in msg
        )


def test_images_without_label_folder_is_a_clear_error(tmp_path):
    root = generate(tmp_path / "r", layout="flat", **SMALL)
    shutil.rmtree(root / "train_segmentations")
    with pytest.raises(ValueError, match="train_segmentations"):
        find_layout(root)


# ------------------------------------------------------------------ decoding odd files
def _save(img: Image.Image, path, fmt):
    img.save(path, format=fmt)
    return path


def test_odd_image_modes_become_rgb(tmp_path):
    grey = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    out = decode_image(_save(Image.fromarray(grey, "L"), tmp_path / "l.png", "PNG"))
    assert out.shape == (3, 12, 10) and out.dtype == torch.uint8
    assert torch.equal(out[0], torch.from_numpy(grey)) and torch.equal(out[0], out[2])

    rgba = np.zeros((6, 5, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    out = decode_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png", "PNG"))
    assert out.shape == (3, 6, 5) and int(out[0, 0, 0]) == 200 and int(out[1, 0, 0]) == 0

    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([10, 20, 30, 40, 50, 60] + [0] * 762)
    out = decode_image(_save(pal, tmp_path / "p.png", "PNG"))
    assert out[:, 0, 1].tolist() == [40, 50, 60] and out[:, 0, 0].tolist() == [10, 20, 30]

    sixteen = Image.fromarray(np.full((4, 4), 65535, np.uint16))
    out = decode_image(_save(sixteen, tmp_path / "i16.png", "PNG"))
    assert out.shape == (3, 4, 4) and int(out.min()) == 255

    cmyk = Image.new("CMYK", (8, 6), (0, 255, 255, 0))  # pure red
    out = decode_image(_save(cmyk, tmp_path / "c.jpg", "JPEG"))
    assert out.shape == (3, 6, 8)
    assert out[0].float().mean() > 200 and out[1].float().mean() < 60

    gjpg = decode_image(_save(Image.fromarray(grey, "L"), tmp_path / "g.jpg", "JPEG"))
    assert gjpg.shape == (3, 12, 10) and torch.equal(gjpg[0], gjpg[1])


def test_labels_8bit_and_palette_are_class_ids_and_colour_labels_are_refused(tmp_path):
    ids = np.array([[0, 14, 15], [19, 255, 3]], np.uint8)
    assert torch.equal(
        decode_label(_save(Image.fromarray(ids, "L"), tmp_path / "l.png", "PNG")),
        torch.from_numpy(ids),
    )
    pal = Image.fromarray(ids, "P")
    pal.putpalette(list(range(256)) * 3)
    assert torch.equal(decode_label(_save(pal, tmp_path / "p.png", "PNG")), torch.from_numpy(ids))
    rgb = _save(Image.new("RGB", (3, 2)), tmp_path / "rgb.png", "PNG")
    with pytest.raises(DataFileError, match="rgb.png"):
        decode_label(rgb)


@pytest.mark.parametrize("payload", [b"not an image at all", b"\xff\xd8\xff\xe0 truncated jpeg"])
def test_unreadable_image_names_the_file(tmp_path, payload):
    path = tmp_path / "broken.jpg"
    path.write_bytes(payload)
    with pytest.raises(DataFileError) as err:
        decode_image(path)
    assert str(path) in str(err.value) and err.value.paths == (path,)


def _copy_root(src, dst):
    shutil.copytree(src, dst)
    files = find_layout(dst)["val"]
    return dst, files


def test_unreadable_label_and_missing_label_name_the_file(synthetic_lip_root, tmp_path):
    root, files = _copy_root(synthetic_lip_root, tmp_path / "r")
    bad = files.label_path(files.ids[0])
    bad.write_bytes(b"garbage")
    ds = LIPDataset(find_layout(root)["val"])
    with pytest.raises(DataFileError, match=str(bad)):
        ds[0]
    gone = files.label_path(files.ids[1])
    gone.unlink()
    with pytest.raises(DataFileError, match=f"missing label {gone}"):
        ds[1]


def test_size_mismatch_names_both_files_and_skip_mode_warns_and_counts(
    synthetic_lip_root, tmp_path
):
    root, files = _copy_root(synthetic_lip_root, tmp_path / "r")
    sample_id = files.ids[0]
    label_path, image_path = files.label_path(sample_id), files.image_path(sample_id)
    Image.fromarray(np.zeros((7, 9), np.uint8), "L").save(label_path)
    ds = LIPDataset(find_layout(root)["val"])
    with pytest.raises(DataFileError) as err:
        ds[0]
    assert str(image_path) in str(err.value) and str(label_path) in str(err.value)

    skipping = LIPDataset(find_layout(root)["val"], skip_bad=True)
    with pytest.warns(UserWarning, match=str(label_path)):
        sample = skipping[0]
    assert sample["id"] == files.ids[1]
    assert skipping.num_skipped == 1 and str(label_path) in skipping.bad_files


def test_generated_jpeg_decodes_like_pil(synthetic_lip_root):
    files = find_layout(synthetic_lip_root)["train"]
    path = files.image_path(files.ids[0])
    ours = decode_image(path).permute(1, 2, 0).numpy().astype(int)
    pil = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB")).astype(int)
    assert ours.shape == pil.shape and np.abs(ours - pil).max() <= 2
