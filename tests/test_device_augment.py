"""``data.augment_on=device`` gives a sample the augmentation ``augment_on=workers`` gives it:
for the same seed the same flip/left-right swap, scale, rotation, crop and jitter (exact where
no resize is needed, within interpolation tolerance otherwise), masks of class ids and 255 only."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate
from torchvision import tv_tensors

from lipnet_pl.data import LIP, LIPDataModule, TrainTransform
from lipnet_pl.data.classes import IGNORE_INDEX
from lipnet_pl.data.device_augment import DeviceAugment, WorkerSide
from lipnet_pl.data.sampling import sample_seed

CROP = (48, 40)
LEFT_ARM, RIGHT_ARM, TORSO = 14, 15, 5


def person(h: int, w: int) -> dict:
    """A smooth image and a mask whose left third is the left arm, right third the right arm:
    a wrong flip or a missing swap turns most arm pixels into the other arm."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    image = torch.stack([xx, yy, (xx + yy) / 2]).mul(255).to(torch.uint8)
    mask = torch.full((h, w), TORSO, dtype=torch.uint8)
    mask[:, : w // 3], mask[:, 2 * w // 3 :] = LEFT_ARM, RIGHT_ARM
    mask[: h // 8] = IGNORE_INDEX
    return {"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask), "id": "p"}


def both_paths(sample: dict, n: int, **augment) -> tuple[list[dict], dict, dict]:
    """Sample ``n`` times as training seeds it (seed 0, epoch 0, index i) through both paths."""
    train = TrainTransform(CROP, LIP.flip_permutation, **augment)
    workers, shipped = [], []
    for i in range(n):
        for out, transform in ((workers, train), (shipped, WorkerSide(train))):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(0, 0, i))
                out.append(transform(sample))
    batch = default_collate(shipped)
    return workers, batch, DeviceAugment(train)(dict(batch))


def test_without_a_resize_both_paths_give_the_same_crops_flips_and_swaps():
    workers, shipped, device = both_paths(person(*CROP), 24)
    flips = shipped["aug"][:, 0].tolist()
    assert 0 < sum(flips) < len(flips)  # both decisions occur
    assert shipped["image"].dtype == torch.uint8 and shipped["mask"].dtype == torch.uint8
    for i, w in enumerate(workers):
        assert torch.equal(w["mask"], device["mask"][i]), i
        assert torch.allclose(w["image"], device["image"][i], atol=1e-4), i


@pytest.mark.parametrize("size", [(90, 70), (31, 27)])
def test_after_the_resize_they_agree_within_interpolation_tolerance(size):
    workers, _, device = both_paths(person(*size), 24)
    for i, w in enumerate(workers):
        agree = (w["mask"] == device["mask"][i]).float().mean()
        assert agree > 0.93, (i, float(agree))  # boundaries move by a pixel, arms never swap
        assert (w["image"] - device["image"][i]).abs().mean() < 0.05, i


def test_keep_fit_uses_the_original_size():
    workers, _, device = both_paths(person(60, 50), 8, fit="keep", scale_range=(0.5, 1.5))
    for i, w in enumerate(workers):
        assert (w["mask"] == device["mask"][i]).float().mean() > 0.9, i


def test_device_masks_hold_class_ids_and_ignore_only():
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([*range(20), IGNORE_INDEX], dtype=torch.uint8)
    mask = labels[torch.randint(0, len(labels), (57, 43), generator=gen)]
    sample = {
        "image": tv_tensors.Image(torch.randint(0, 256, (3, 57, 43), dtype=torch.uint8)),
        "mask": tv_tensors.Mask(mask),
        "id": "r",
    }
    _, _, device = both_paths(sample, 16, scale_range=(0.5, 1.0))
    values = set(device["mask"].unique().tolist())
    assert values <= set(range(20)) | {IGNORE_INDEX} and IGNORE_INDEX in values
    assert device["mask"].dtype == torch.uint8 and device["image"].dtype == torch.float32
    assert list(device["image"].shape) == [16, 3, *CROP] and "aug" not in device


def test_device_augment_refuses_a_batch_of_the_worker_path():
    train = TrainTransform(CROP, LIP.flip_permutation)
    batch = default_collate([train(person(*CROP))])
    batch["aug"] = torch.zeros(1, 10)
    with pytest.raises(ValueError, match="data.augment_on=device"):
        DeviceAugment(train)(batch)


def test_datamodule_ships_uint8_with_augment_on_device(synthetic_lip_root):
    dm = LIPDataModule(
        str(synthetic_lip_root), batch_size=2, num_workers=0, crop_size=CROP, augment_on="device"
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.uint8 and batch["aug"].shape == (2, 10)
    out = dm.device_augment(batch)
    assert out["image"].dtype == torch.float32 and list(out["image"].shape) == [2, 3, *CROP]
    assert out["mask"].dtype == torch.uint8 and set(out) == {"image", "mask", "id"}


def test_augment_on_auto_is_workers_without_an_accelerator_and_bad_values_name_the_key(
    synthetic_lip_root,
):
    dm = LIPDataModule(str(synthetic_lip_root), batch_size=2, crop_size=CROP)
    assert dm.augment_on == "auto" and dm.resolved_augment_on() == "workers"
    with pytest.raises(ValueError, match="data.augment_on='gpu'"):
        LIPDataModule(str(synthetic_lip_root), augment_on="gpu")
