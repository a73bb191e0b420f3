"""Large images: labels resized and argmaxed in strips equal the full-size resize (issue 28,
item 4), and the strip-wise overlay equals the whole-image blend."""

from __future__ import annotations

import numpy as np
import torch

from lipnet_pl.core.labels import labels_at, labels_uint8
from lipnet_pl.core.viz import overlay


def test_strips_give_the_labels_of_the_full_size_resize():
    logits = torch.randn(20, 31, 27, generator=torch.Generator().manual_seed(0))
    for size in [(203, 157), (64, 500), (31, 27), (17, 9)]:
        whole = labels_at(logits, size).to(torch.uint8)
        strips = labels_uint8(logits, size, budget=20 * size[1] * 3)  # 3 rows per strip
        assert strips.dtype == torch.uint8 and strips.shape == size
        assert (strips != whole).float().mean() < 1e-3, size  # ties to rounding only


def test_overlay_in_strips_equals_the_whole_blend():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    label = rng.integers(0, 20, (50, 40), dtype=np.uint8)
    label[0, :5] = 255
    assert np.array_equal(overlay(image, label, rows=7), overlay(image, label, rows=1000))
    whole = overlay(image, label, rows=1000)
    fg = (label != 0) & (label != 255)
    assert np.array_equal(whole[~fg], image[~fg])  # background and ignore stay the image
