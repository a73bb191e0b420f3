"""LIPDataModule batches and config handling; the synthetic generator."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from lipnet_pl.data import LIPDataModule, decode_label, find_layout
from lipnet_pl.data.dataset import DataFileError
from lipnet_pl.data.synthetic import generate, make_sample

CONF = Path(__file__).resolve().parents[1] / "conf" / "data"


def _dm(root, **kw):
    kw.setdefault("batch_size", 4)
    kw.setdefault("num_workers", 0)
    kw.setdefault("crop_size", (48, 40))
    return LIPDataModule(str(root), **kw)


def test_train_batch_contract(synthetic_lip_root):
    dm = _dm(synthetic_lip_root)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 48, 40) and batch["image"].dtype == torch.float32
    assert (
        batch["mask"].shape == (4, 48, 40) and batch["mask"].dtype == torch.uint8
    )  # widened on the device
    assert len(batch["id"]) == 4 and all(isinstance(i, str) for i in batch["id"])
    values = set(batch["mask"].unique().tolist())
    assert values <= set(range(20)) | {255} and len(values) > 5
    assert -2.5 < float(batch["image"].min()) and float(batch["image"].max()) < 2.7  # normalised
    assert dm.num_classes == 20 and dm.classes.names[14] == "Left-arm" and dm.crop_size == (48, 40)
    assert len(dm.mean) == 3 and len(dm.std) == 3


def test_val_batch_carries_original_size_labels(synthetic_lip_root):
    dm = _dm(synthetic_lip_root, batch_size=4)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    files = find_layout(synthetic_lip_root)["val"]
    assert batch["image"].shape == (4, 3, 48, 40)
    assert batch["id"] == list(files.ids[:4])
    for i, sample_id in enumerate(batch["id"]):
        original = decode_label(files.label_path(sample_id)).long()
        assert torch.equal(batch["mask"][i], original)
        assert batch["orig_size"][i].tolist() == list(original.shape)
    assert len({tuple(m.shape) for m in batch["mask"]}) > 1  # sizes really vary


def test_predict_and_test_batches_have_no_mask(synthetic_lip_root):
    dm = _dm(synthetic_lip_root)
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert (
        "mask" not in batch
        and batch["image"].shape == (2, 3, 48, 40)
        and batch["orig_size"].shape == (2, 2)
    )
    dm.setup("test")
    assert "mask" not in next(iter(dm.test_dataloader()))


def test_global_batch_size_is_divided_per_device(synthetic_lip_root):
    dm = _dm(synthetic_lip_root, batch_size=8)
    dm.trainer = SimpleNamespace(world_size=2)
    dm.setup("fit")
    assert dm.per_device_batch_size == 4
    assert next(iter(dm.train_dataloader()))["image"].shape[0] == 4
    bad = _dm(synthetic_lip_root, batch_size=7)
    bad.trainer = SimpleNamespace(world_size=2)
    with pytest.raises(ValueError, match=r"data.batch_size=7.*2 devices"):
        bad.setup("fit")


def test_missing_root_and_class_mismatch_errors(tmp_path):
    dm = _dm(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"data\.root.*data/README\.md"):
        dm.setup("fit")
    with pytest.raises(ValueError, match=r"data.num_classes=7"):
        _dm(tmp_path, num_classes=7, classes={"names": ["a", "b"]})
    with pytest.raises(ValueError, match=r"data\.augment.*scale_range.*\[1\.5, 0\.5\]"):
        _dm(tmp_path, augment={"scale_range": [1.5, 0.5]})
    with pytest.raises(ValueError, match=r"data\.augment.*colour"):
        _dm(tmp_path, augment={"colour": 0.1})
    with pytest.raises(ValueError, match=r"data\.synthetic\.\['trian'\]"):
        _dm(tmp_path, synthetic={"trian": 3})
    with pytest.raises(ValueError, match=r"data.batch_size must be >= 1, got 0"):
        _dm(tmp_path, batch_size=0)


def test_custom_classes_from_config_drive_the_flip_swap(synthetic_lip_root):
    classes = {"names": ["bg", "left", "right"], "flip_pairs": [[1, 2]]}
    dm = _dm(synthetic_lip_root, num_classes=3, classes=OmegaConf.create(classes))
    assert dm.num_classes == 3 and dm.classes.flip_permutation == (0, 2, 1)
    generic = _dm(synthetic_lip_root, num_classes=5)
    assert generic.classes.names[4] == "class_4" and generic.classes.flip_pairs == ()


def test_hydra_synthetic_config_generates_data_in_prepare_data(tmp_path):
    cfg = OmegaConf.merge(
        OmegaConf.load(CONF / "lip.yaml"), OmegaConf.load(CONF / "synthetic.yaml")
    )
    cfg.pop("defaults")
    full = OmegaConf.create({"paths": {"data_dir": str(tmp_path)}, "data": cfg})
    full.data.synthetic.update(train=4, val=2, test=1, min_size=40, max_size=60)
    full.data.num_workers = 0
    full.data.batch_size = 2
    dm = instantiate(full.data)
    assert isinstance(dm, LIPDataModule) and dm.root == tmp_path / "synthetic_lip"
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_dataset) == 4 and len(dm.val_dataset) == 2
    assert next(iter(dm.train_dataloader()))["image"].shape == (2, 3, 128, 128)


def test_generator_is_deterministic_and_seed_dependent(tmp_path):
    kw = {"style": "simple", "train": 3, "val": 1, "test": 1, "min_size": 48, "max_size": 96}
    a, b = generate(tmp_path / "a", seed=5, **kw), generate(tmp_path / "b", seed=5, **kw)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert (
        files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
        and len(files_a) == 13  # 5 jpg + 4 png + 3 id files + synthetic.json
    )
    assert all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)
    c = generate(tmp_path / "c", seed=6, **kw)
    assert sorted(p.name for p in c.rglob("*.jpg")) != sorted(p.name for p in a.rglob("*.jpg"))
    with pytest.raises(FileExistsError, match=str(a)):
        generate(a, seed=5, **kw)


def test_generator_uses_all_classes_with_left_parts_on_the_image_right(synthetic_lip_root):
    files = find_layout(synthetic_lip_root)["train"]
    seen = set()
    for sample_id in files.ids:
        label = decode_label(files.label_path(sample_id)).numpy()
        seen |= set(np.unique(label).tolist())
        cols = np.arange(label.shape[1])[None, :].repeat(label.shape[0], 0)
        for left, right in ((14, 15), (16, 17), (18, 19)):
            if (label == left).any() and (label == right).any():
                assert cols[label == left].mean() > cols[label == right].mean()
    assert seen == set(range(20))


def test_left_and_right_parts_look_the_same():
    _, image, label = make_sample(0, "train", 2, 200, 200, "simple")
    for left, right in ((14, 15), (16, 17)):
        a, b = image[label == left].mean(0), image[label == right].mean(0)
        assert np.abs(a - b).max() < 12
    assert (
        np.abs(image[label == 14].mean(0) - image[label == 2].mean(0)).max() > 40
    )  # classes differ


def test_prepare_data_regenerates_stale_synthetic_sets_but_never_foreign_data(tmp_path):
    small = {"train": 2, "val": 1, "test": 0, "min_size": 32, "max_size": 48}
    dm = _dm(tmp_path / "syn", synthetic=small)
    dm.prepare_data()
    assert len(find_layout(tmp_path / "syn")["train"].ids) == 2
    _dm(tmp_path / "syn", synthetic={**small, "train": 3}).prepare_data()
    assert len(find_layout(tmp_path / "syn")["train"].ids) == 3
    foreign = generate(
        tmp_path / "mine", style="simple", train=1, val=1, test=0, min_size=32, max_size=48
    )
    (foreign / "synthetic.json").unlink()
    _dm(foreign, synthetic=small).prepare_data()
    assert len(find_layout(foreign)["train"].ids) == 1
    assert oct((tmp_path / "syn").stat().st_mode & 0o777) != oct(0o700)


def test_label_values_outside_the_classes_fail_naming_the_file_or_become_ignore(
    synthetic_lip_root, tmp_path
):
    """A mis-converted mask (25 in a 20-class set) is found where it is loaded, not by the loss;
    with data.bad_labels=ignore those pixels become 255 with a warning naming the file."""
    root = tmp_path / "LIP"
    shutil.copytree(synthetic_lip_root, root)
    val = find_layout(root)["val"]
    path = val.label_path(val.ids[0])
    label = np.array(decode_label(path))
    label[:2, :5] = 25
    label[2, 0] = 255  # the ignore index is allowed
    Image.fromarray(label).save(path)
    dm = _dm(root)
    dm.setup("validate")
    with pytest.raises(DataFileError, match=r"has values \[25\] outside the 20 classes") as err:
        dm.val_dataset.load(0)
    assert str(path) in str(err.value) and "data.num_classes" in str(err.value)
    dm = _dm(root, bad_labels="ignore")
    dm.setup("validate")
    with pytest.warns(UserWarning, match=f"label {path}: values \\[25\\]"):
        mask = dm.val_dataset.load(0)["mask"]
    expected = torch.from_numpy(label).masked_fill(torch.from_numpy(label) == 25, 255)
    assert torch.equal(mask.as_subclass(torch.Tensor), expected)
    with pytest.raises(ValueError, match="data.bad_labels='skip'"):
        _dm(root, bad_labels="skip")
