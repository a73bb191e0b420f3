"""Which validation samples a DistributedSampler added as padding (they must not be counted)."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DistributedSampler


def padded_sample_mask(sampler: Any, first_local_index: int, count: int) -> list[bool]:
    """Which of ``count`` consecutive local samples are real (True) vs. DistributedSampler padding.

    ``DistributedSampler`` (shuffled or not) pads its index list to a multiple of the world size
    by repeating its first indices at the END, then gives rank ``r`` positions ``r, r+W, r+2W...``.
    So the ``k``-th sample of rank ``r`` is a duplicate exactly when ``r + k * W >= len(dataset)``.
    Samplers that do not pad (single process, ``UnrepeatedDistributedSampler``, ``drop_last``)
    never reach such positions, so every sample is kept.
    """
    if not isinstance(sampler, DistributedSampler):
        return [True] * count
    n, world, rank = len(sampler.dataset), sampler.num_replicas, sampler.rank
    return [rank + (first_local_index + i) * world < n for i in range(count)]
