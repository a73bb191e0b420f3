"""Joint transforms: left/right swap on flip, the fused warp, fused jitter+normalise."""

from __future__ import annotations

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from lipnet_pl.data import (
    LIP,
    JitterNormalize,
    RandomHorizontalFlipSwap,
    RandomScaleRotateCrop,
    TrainTransform,
)
from lipnet_pl.data.classes import IGNORE_INDEX

PAIRS = {14: 15, 15: 14, 16: 17, 17: 16, 18: 19, 19: 18}


def _label(h=6, w=10):
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[0, 1], mask[0, 8] = 14, 15  # left arm on the image's right side is drawn at col 8
    mask[1, 2], mask[2, 7] = 16, 17
    mask[3, 0], mask[3, 9] = 18, 19
    mask[4, 3], mask[4, 4], mask[5, 5] = 5, 13, IGNORE_INDEX
    return mask


def test_flip_maps_left_parts_to_right_at_the_mirrored_position_and_nothing_else():
    mask = _label()
    image = torch.arange(3 * 6 * 10, dtype=torch.uint8).view(3, 6, 10)
    flip = RandomHorizontalFlipSwap(LIP.flip_permutation, p=1.0)
    out = flip({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})
    assert torch.equal(out["image"], image.flip(-1))
    w = mask.shape[1]
    for r in range(mask.shape[0]):
        for c in range(w):
            before, after = int(mask[r, c]), int(out["mask"][r, w - 1 - c])
            assert after == PAIRS.get(before, before), (r, c, before, after)
    assert int(out["mask"][0, 8]) == 15 and int(out["mask"][0, 1]) == 14  # Left-arm -> Right-arm


def test_flip_with_p0_and_without_pairs_changes_nothing():
    mask = _label()
    out = RandomHorizontalFlipSwap(LIP.flip_permutation, p=0.0)(tv_tensors.Mask(mask))
    assert torch.equal(out, mask)
    no_pairs = RandomHorizontalFlipSwap(list(range(20)), p=1.0)(tv_tensors.Mask(mask))
    assert torch.equal(no_pairs, mask.flip(-1))


def _identity_pipeline(h, w, flip_p):
    return TrainTransform(
        crop_size=(h, w),
        flip_permutation=LIP.flip_permutation,
        scale_range=(1.0, 1.0),
        rotation=0.0,
        flip_p=flip_p,
        brightness=0,
        contrast=0,
        saturation=0,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
    )


def test_train_pipeline_without_randomness_is_exact_and_flip_swaps_labels():
    mask = _label(12, 20).repeat_interleave(1, 0)
    image = torch.randint(0, 256, (3, 12, 20), dtype=torch.uint8)
    sample = {"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask), "id": "x"}
    same = _identity_pipeline(12, 20, flip_p=0.0)(sample)
    assert same["mask"].dtype == torch.uint8 and torch.equal(same["mask"], mask)
    assert torch.allclose(same["image"], image.float() / 255, atol=1e-5)
    flipped = _identity_pipeline(12, 20, flip_p=1.0)(sample)
    perm = torch.tensor(list(LIP.flip_permutation) + list(range(20, 256)))
    assert torch.equal(flipped["mask"].long(), perm[mask.long()].flip(-1))
    assert flipped["id"] == "x" and set(flipped) == {"image", "mask", "id"}


def test_scale_rotate_crop_pads_with_ignore_keeps_label_values_and_output_size():
    torch.manual_seed(0)
    mask = torch.randint(0, 20, (30, 20), dtype=torch.uint8)
    image = torch.full((3, 30, 20), 200, dtype=torch.uint8)
    warp = RandomScaleRotateCrop((40, 40), scale_range=(0.5, 0.5), rotation=30, rotation_p=1.0)
    for _ in range(5):
        out = warp({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask)})
        assert out["image"].shape == (3, 40, 40) and out["mask"].shape == (40, 40)
        values = set(out["mask"].unique().tolist())
        assert IGNORE_INDEX in values and values <= set(range(20)) | {IGNORE_INDEX}  # nearest only
        outside = out["mask"] == IGNORE_INDEX
        assert float(out["image"][:, outside].max()) < 0.5  # padding is black in the image
        assert float(out["image"][:, ~outside].mean()) > 0.6


def test_keep_fit_scales_original_pixels():
    torch.manual_seed(0)
    mask = tv_tensors.Mask(torch.ones(10, 10, dtype=torch.uint8))
    out = RandomScaleRotateCrop((40, 40), scale_range=(2.0, 2.0), rotation=0, fit="keep")(mask)
    assert int((out == 1).sum()) == 400  # 10x10 scaled by 2 = 20x20 inside a 40x40 pad


def test_jitter_normalize_matches_torchvision_without_jitter_and_with_brightness():
    image = tv_tensors.Image(torch.randint(0, 256, (3, 9, 7), dtype=torch.uint8))
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    ref = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])(image)
    assert torch.allclose(JitterNormalize(mean=mean, std=std)(image), ref, atol=1e-5)
    jn = JitterNormalize(brightness=0.5, mean=mean, std=std)
    torch.manual_seed(1)
    params = jn.make_params([image])
    out = jn.transform(image, params)
    bright = v2.functional.adjust_brightness(
        v2.functional.to_dtype(image, torch.float32, scale=True), params["brightness"]
    )
    assert torch.allclose(out, v2.functional.normalize(bright, mean, std), atol=1e-5)


def test_jitter_normalize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="brightness"):
        JitterNormalize(brightness=1.5)
    with pytest.raises(ValueError, match="std"):
        JitterNormalize(std=(0.1, 0.0, 0.1))
    with pytest.raises(ValueError, match="scale_range"):
        RandomScaleRotateCrop((8, 8), scale_range=(1.2, 0.5))


def test_train_pipeline_pads_with_normalised_black_and_ignore():
    torch.manual_seed(0)
    image = torch.full((3, 20, 16), 255, dtype=torch.uint8)
    mask = torch.full((20, 16), 5, dtype=torch.uint8)
    pipeline = TrainTransform(crop_size=(40, 40), scale_range=(0.5, 0.5), rotation=20, rotation_p=1)
    out = pipeline({"image": tv_tensors.Image(image), "mask": tv_tensors.Mask(mask), "id": "p"})
    pad = out["mask"] == IGNORE_INDEX
    assert pad.any() and (out["mask"][~pad] == 5).all()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1)
    black, white = -mean / std, (1 - mean) / std
    near_person = torch.nn.functional.max_pool2d((~pad)[None].float(), 3, 1, 1)[0] > 0
    far = pad & ~near_person  # bilinear edges blend; the rest of the pad is exactly black
    assert far.sum() > 100
    assert torch.allclose(out["image"][:, far], black.expand(3, int(far.sum())), atol=1e-5)
    inner = out["image"][:, 12:28, 12:28].reshape(3, -1)  # centre of the person: jittered white
    assert (inner > black + 0.5).all() and (inner <= white + 1e-5).all()
