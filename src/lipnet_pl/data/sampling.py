"""Training order and augmentation as pure functions of (seed, epoch, position): resumable runs.

A preempted or killed run that resumes from a checkpoint (even one written mid-epoch) must see
exactly the batches the uninterrupted run would have seen, or "resume" silently changes the
result. :class:`EpochSampler` therefore

* shuffles with a generator seeded by ``seed + epoch`` (not the global RNG, whose state a new
  process does not share), shards the order over DDP ranks like ``DistributedSampler``,
* can skip the samples a checkpoint says were already used in its epoch,
* yields ``(epoch, index)`` keys, so the dataset seeds each sample's augmentation from
  ``(seed, epoch, index)`` (:func:`sample_seed`), independent of workers and restarts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Sampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample's augmentation (SplitMix64-style mixing, no collisions in
    practice between neighbouring epochs or indices)."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(epoch) * 0xBF58476D1CE4E5B9 + int(index)) & (
        2**64 - 1
    )
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & (2**63 - 1)


class EpochSampler(Sampler[tuple[int, int]]):
    """Per-epoch order of ``size`` samples for one of ``num_replicas`` ranks, resumable.

    ``drop_last`` trims the global order to a multiple of the world size instead of padding it
    with repeats of its first entries (DistributedSampler's two modes). ``len()`` is the full
    per-rank count even while skipping, so the trainer keeps its epoch length.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError(f"EpochSampler needs at least one sample, got size={size}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank}")
        self.size, self.shuffle, self.seed = int(size), bool(shuffle), int(seed)
        self.num_replicas, self.rank, self.drop_last = int(num_replicas), int(rank), drop_last
        if drop_last and self.size >= self.num_replicas:
            self.per_rank = self.size // self.num_replicas
        else:
            self.per_rank = math.ceil(self.size / self.num_replicas)
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch start."""
        self.epoch = int(epoch)

    def resume(self, epoch: int, samples_done: int) -> None:
        """Start at ``epoch``, skipping this rank's first ``samples_done`` samples of it."""
        self.epoch = int(epoch)
        self._skip = max(0, int(samples_done))

    def order(self, epoch: int) -> list[int]:
        """This rank's sample indices for ``epoch``."""
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.num_replicas
        if total > len(order):  # pad with the first samples, as DistributedSampler does
            order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[:total][self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        for index in self.order(epoch)[skip:]:
            yield (epoch, index)

    def __len__(self) -> int:
        return self.per_rank


class ResumableLoader(DataLoader):
    """The training DataLoader, resumable in Lightning's eyes (``state_dict``/``load_state_dict``),
    so a mid-epoch resume does not warn that the loader is not resumable. ``position()`` gives
    ``{"epoch", "samples_done"}`` from the trainer's progress (the loader runs ahead of it). The
    position itself is restored once, by the datamodule (``LIPDataModule.load_state_dict``, which
    Lightning calls before it builds this loader; checkpoints without loader state resume too)."""

    def __init__(self, *args, position: Callable[[], dict[str, int]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._position = position

    def state_dict(self) -> dict[str, int]:
        return self._position()

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Nothing to do: the sampler already starts where the datamodule put it."""
