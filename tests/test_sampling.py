"""Training order and augmentation are functions of (seed, epoch, position): a resumed or
sharded run sees exactly the samples and augmentations of an uninterrupted single process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from lipnet_pl.data import LIPDataModule
from lipnet_pl.data.sampling import EpochSampler, sample_seed


def test_order_depends_on_seed_and_epoch_only():
    a, b = EpochSampler(10, seed=1), EpochSampler(10, seed=1)
    torch.manual_seed(123)  # the global RNG plays no part
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(i for _, i in a) == list(range(10))
    assert {e for e, _ in a} == {1}
    assert list(EpochSampler(10, seed=2)) != list(b)


@pytest.mark.parametrize(("size", "world"), [(10, 3), (7, 2), (8, 4)])
def test_ranks_cover_every_sample_with_distributed_sampler_padding(size, world):
    shards = [list(EpochSampler(size, seed=0, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal lengths: no rank waits for another
    seen = [i for shard in shards for _, i in shard]
    assert set(seen) == set(range(size)) and len(seen) == -(-size // world) * world


def test_resume_skips_exactly_the_used_samples_of_its_epoch():
    full = EpochSampler(12, seed=5)
    full.set_epoch(3)
    order = list(full)
    resumed = EpochSampler(12, seed=5)
    resumed.resume(epoch=3, samples_done=4)
    assert list(resumed) == order[4:]
    assert len(resumed) == 12  # the trainer keeps its epoch length
    assert list(resumed) == order  # the skip applies to one pass only


def test_sample_seeds_differ_between_epochs_indices_and_seeds():
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(5) for i in range(50)}
    assert len(seeds) == 3 * 5 * 50


def test_augmentation_of_a_sample_does_not_depend_on_order_or_workers(synthetic_lip_root):
    dm = LIPDataModule(synthetic_lip_root, batch_size=2, num_workers=0, crop_size=(40, 40), seed=7)
    dm.setup("fit")
    data = dm.train_dataset
    keys = [(2, 0), (2, 5), (3, 0)]
    first = [data[k]["image"] for k in keys]
    again = [data[k]["image"] for k in reversed(keys)][::-1]
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[2])  # another epoch, another augmentation
    with_workers = DataLoader(data, batch_size=1, sampler=keys, num_workers=2)
    assert all(torch.equal(b["image"][0], x) for b, x in zip(with_workers, first, strict=True))


def test_datamodule_resumes_mid_epoch_from_its_checkpoint_state(synthetic_lip_root):
    def datamodule():
        dm = LIPDataModule(synthetic_lip_root, batch_size=2, num_workers=0, crop_size=(40, 40))
        dm.setup("fit")
        return dm

    reference = datamodule().train_dataloader()
    reference.sampler.set_epoch(1)
    ids = [b["id"] for b in reference]
    resumed = datamodule()
    resumed.load_state_dict({"epoch": 1, "samples_done": 4})
    assert [b["id"] for b in resumed.train_dataloader()] == ids[2:]
